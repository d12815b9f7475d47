package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// need finds a tool, skipping the test without it unless
// BACKY_REQUIRE_TOOLS=1 (make test), which fails it instead.
func need(t *testing.T, tool, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err == nil {
		return p
	}
	if os.Getenv("BACKY_REQUIRE_TOOLS") == "1" {
		t.Fatalf("%s not found (Debian package %s) and BACKY_REQUIRE_TOOLS=1", tool, pkg)
	}
	t.Skipf("%s not found (Debian package %s)", tool, pkg)
	return ""
}

// TestInstall runs make install into a scratch root (never onto this
// machine) and checks what it put there: the commands, the man pages, a
// systemd unit that systemd-analyze verify accepts, and a logrotate file
// that logrotate reads without complaint.
func TestInstall(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and installs everything")
	}
	analyze := need(t, "systemd-analyze", "systemd")
	logrotate := need(t, "logrotate", "logrotate")
	need(t, "go-md2man", "go-md2man")
	_, file, _, _ := runtime.Caller(0)
	src := filepath.Join(filepath.Dir(file), "..", "..")
	root := t.TempDir()
	make := exec.Command("make", "-C", src, "install", "DESTDIR="+root, "PREFIX=/usr")
	if out, err := make.CombinedOutput(); err != nil {
		t.Fatalf("make install: %v\n%s", err, out)
	}
	for _, f := range []string{
		"usr/bin/backy-schedule", "usr/bin/backy-store", "usr/bin/backy-extract", "usr/bin/backy-restore",
		"usr/bin/backy-check", "usr/bin/backy-nbd",
		"usr/share/man/man1/backy-schedule.1", "usr/share/man/man5/backy.conf.5",
		"usr/lib/systemd/system/backy-schedule.service", "etc/logrotate.d/backy",
		"usr/share/bash-completion/completions/backy-store", "usr/share/zsh/site-functions/_backy-restore",
	} {
		if _, err := os.Stat(filepath.Join(root, f)); err != nil {
			t.Errorf("make install did not install %s: %v", f, err)
		}
	}
	// bash-completion loads the file when backy-store is first completed.
	comp := filepath.Join(root, "usr/share/bash-completion/completions/backy-store")
	if out, err := exec.Command("bash", "-c", `source "$1" && complete -p backy-store`, "-", comp).CombinedOutput(); err != nil ||
		strings.TrimSpace(string(out)) != "complete -o default -F _backy_store backy-store" {
		t.Errorf("bash did not load %s: %v\n%s", comp, err, out)
	}
	unit, err := os.ReadFile(filepath.Join(root, "usr/lib/systemd/system/backy-schedule.service"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(unit), "ExecStart=/usr/bin/backy-schedule -c /etc/backy.conf") || strings.Contains(string(unit), "@") {
		t.Errorf("unit's ExecStart not filled in:\n%s", unit)
	}

	// systemd-analyze verify resolves the unit's dependencies (sysinit.target
	// and so on) and its ExecStart inside --root: the root gets systemd's own
	// units, as an installed system has them, in /lib/systemd/system.
	if err := os.MkdirAll(filepath.Join(root, "lib/systemd/system"), 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("cp", "-a", "/lib/systemd/system/.", filepath.Join(root, "lib/systemd/system")).CombinedOutput(); err != nil {
		t.Fatalf("copying systemd's units: %v\n%s", err, out)
	}
	// ExecReload runs /bin/kill, which every system has.
	os.MkdirAll(filepath.Join(root, "bin"), 0o755)
	if out, err := exec.Command("cp", "/bin/kill", filepath.Join(root, "bin/kill")).CombinedOutput(); err != nil {
		t.Fatalf("copying /bin/kill: %v\n%s", err, out)
	}
	// Documentation= names man pages: man looks them up where make
	// install put them.
	verify := func() (string, error) {
		cmd := exec.Command(analyze, "verify", "--root="+root, "backy-schedule.service")
		cmd.Env = append(os.Environ(), "MANPATH="+filepath.Join(root, "usr/share/man"))
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := verify(); err != nil || out != "" {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	// The check can fail: without the binary the unit is refused.
	os.Rename(filepath.Join(root, "usr/bin/backy-schedule"), filepath.Join(root, "usr/bin/away"))
	if out, err := verify(); err == nil || !strings.Contains(out, "/usr/bin/backy-schedule is not executable") {
		t.Errorf("systemd-analyze verify without the binary: %v\n%s", err, out)
	}

	// logrotate -d reads the rules and changes nothing.
	out, err := exec.Command(logrotate, "-d", "-s", filepath.Join(root, "logrotate.state"), filepath.Join(root, "etc/logrotate.d/backy")).CombinedOutput()
	if err != nil || strings.Contains(string(out), "error:") {
		t.Errorf("logrotate -d: %v\n%s", err, out)
	}
	for _, want := range []string{"/var/log/backy/backy-schedule.log", "/srv/backy/.backy-schedule/log/*.log"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("logrotate -d does not mention %s:\n%s", want, out)
		}
	}
}
