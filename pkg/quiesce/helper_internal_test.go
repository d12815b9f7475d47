package quiesce

import (
	"io"
	"log/slog"
	"regexp"
	"testing"
	"time"

	"github.com/backy/backy/internal/freezetest"
	"github.com/backy/backy/internal/logtest"
)

// helperLog collects what serve logs.
type helperLog struct {
	*logtest.Lines
	log *slog.Logger
}

func newHelperLog() *helperLog {
	log, lines := logtest.New()
	return &helperLog{lines, log}
}

var thawBegan = regexp.MustCompile(`thaw began at (\S+): ([^)]*)\)`)

// began is when the thaw began after the freeze, and why, from the log.
func (l *helperLog) began(t *testing.T) (time.Duration, string) {
	t.Helper()
	all := l.String()
	m := thawBegan.FindStringSubmatch(all)
	if m == nil {
		t.Fatalf("no thaw in the helper's log:\n%s", all)
	}
	d, err := time.ParseDuration(m[1])
	if err != nil {
		t.Fatal(err)
	}
	return d, m[2]
}

// TestHelperDeadline: the helper keeps its own deadline, the start of the
// freeze plus the timeout. A parent that neither says "thaw" nor dies (a
// stopped one) gets the guest thawed at the deadline, not later; a parent
// that dies while the freeze command still runs gets it thawed at once,
// without waiting for init to reap the command's orphans.
func TestHelperDeadline(t *testing.T) {
	g := freezetest.New(t)
	const timeout = time.Second
	t.Run("silent parent", func(t *testing.T) {
		in, w := io.Pipe()
		defer w.Close()
		go io.WriteString(w, "freeze\n")
		log := newHelperLog()
		start := time.Now()
		err := serve(in, io.Discard, &spec{FreezeCommand: g.FreezeCommand(), ThawCommand: g.ThawCommand(), Timeout: timeout}, log.log)
		took := time.Since(start)
		if err != nil {
			t.Fatal(err)
		}
		g.ThawedWithin(t, 0)
		began, why := log.began(t)
		t.Logf("thaw began %s after the freeze (%s); serve returned after %s", began, why, took)
		if why != "timeout, not asked" || began < timeout || began > timeout+500*time.Millisecond {
			t.Errorf("thaw began %s after the freeze (%s), want at the timeout %s", began, why, timeout)
		}
	})
	t.Run("parent gone during the freeze", func(t *testing.T) {
		in, w := io.Pipe()
		go func() {
			io.WriteString(w, "freeze\n")
			for !g.Frozen(20 * time.Millisecond) {
			}
			w.Close()
		}()
		log := newHelperLog()
		// The command froze and still runs: its shell and its sleep are
		// killed, the sleep an orphan of the shell by then.
		err := serve(in, io.Discard, &spec{FreezeCommand: g.FreezeCommand() + " && sleep 30", ThawCommand: g.ThawCommand(), Timeout: 10 * timeout}, log.log)
		if err != nil {
			t.Fatal(err)
		}
		g.ThawedWithin(t, 0)
		began, why := log.began(t)
		t.Logf("thaw began %s after the freeze (%s)", began, why)
		if why != "pipe closed during the freeze" || began > timeout {
			t.Errorf("thaw began %s after the freeze (%s), want at once after the parent went", began, why)
		}
	})
}
