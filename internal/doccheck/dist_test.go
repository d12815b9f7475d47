package doccheck

import (
	"os"
	"strings"
	"testing"
)

// TestDistExamples keeps backy-schedule(1)'s EXAMPLES to the unit and the
// logrotate rules make install ships: every setting line the page quotes
// is a line of the shipped file (the page once showed a unit of another
// name without KillMode, and a logrotate rule that sent SIGHUP to every
// process of the unit, killing the running stores).
func TestDistExamples(t *testing.T) {
	page := read(t, "../../man/backy-schedule.1.md")
	i := strings.Index(page, "\n# EXAMPLES\n")
	if i < 0 {
		t.Fatal("backy-schedule.1.md has no EXAMPLES")
	}
	examples := page[i:]
	unit := strings.ReplaceAll(read(t, "../../dist/backy-schedule.service"), "@BINDIR@", "/usr/bin")
	rotate := read(t, "../../dist/backy.logrotate")
	shipped := map[string]bool{}
	for _, line := range strings.Split(unit+"\n"+rotate, "\n") {
		shipped[strings.TrimSpace(line)] = true
	}
	quoted := 0
	for _, line := range strings.Split(examples, "\n") {
		code, ok := strings.CutPrefix(line, "    ")
		code = strings.TrimSpace(code)
		if !ok || code == "" || strings.HasPrefix(code, "$") || strings.Contains(code, "backy-schedule -c /etc/backy.conf --check-config") || strings.HasPrefix(code, "jq ") {
			continue
		}
		quoted++
		if !shipped[code] {
			t.Errorf("backy-schedule(1) EXAMPLES quote %q, which dist/ does not ship", code)
		}
	}
	for _, must := range []string{"KillMode=process", "--kill-whom=main"} {
		if !strings.Contains(examples, must) || !shipped[must] && !strings.Contains(unit+rotate, must) {
			t.Errorf("%s missing from the EXAMPLES or from dist/", must)
		}
	}
	if quoted < 10 {
		t.Errorf("only %d lines of the unit and logrotate rules quoted", quoted)
	}
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
