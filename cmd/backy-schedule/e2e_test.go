package main

// End-to-end tests: the real daemon (this test binary, run as
// backy-schedule) with the real backy-extract, backy-store and backy-check,
// on real image files, with a schedule of seconds.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/backy/backy/internal/clitest"
	"github.com/backy/backy/pkg/daemon/daemontest"
	"github.com/backy/backy/pkg/jobstatus"
	"github.com/backy/backy/pkg/schedule"
)

// env is the environment of every process the tests start: the other
// backy commands on PATH, and intervals of seconds allowed.
func env() []string {
	return append(os.Environ(), "PATH="+clitest.BinDir+string(os.PathListSeparator)+os.Getenv("PATH"),
		schedule.TestMinIntervalEnv+"=1s")
}

func startDaemon(t *testing.T, args ...string) *daemontest.Daemon {
	t.Helper()
	return startDaemonEnv(t, env(), args...)
}

// startDaemonEnv starts backy-schedule with environment environ.
func startDaemonEnv(t *testing.T, environ []string, args ...string) *daemontest.Daemon {
	t.Helper()
	return daemontest.Start(t, "backy-schedule", environ, args)
}

// eventually polls cond until it holds, failing with its last word after
// timeout.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, last := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s; last:\n%s", what, timeout, last)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// backyCheck runs the real plugin.
func backyCheck(t *testing.T, conf string) (int, string) {
	t.Helper()
	c := exec.Command(filepath.Join(clitest.BinDir, "backy-check"), "-c", conf)
	c.Env = env()
	out, err := c.Output()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return ee.ExitCode(), string(out)
	case err != nil:
		t.Fatal(err)
	}
	return 0, string(out)
}

func revisions(dir string) []string {
	m, _ := filepath.Glob(filepath.Join(dir, "revisions", "*.rev"))
	var ids []string
	for _, f := range m {
		ids = append(ids, strings.TrimSuffix(filepath.Base(f), ".rev"))
	}
	return ids
}

// console talks to the daemon over TCP like nc would: commands in, the
// replies after the greeting out.
func console(t *testing.T, port int, cmds ...string) string {
	t.Helper()
	conn, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	r := bufio.NewReader(conn)
	if g, _ := r.ReadString('\n'); !strings.Contains(g, "console; type help") {
		t.Fatalf("greeting %q", g)
	}
	fmt.Fprint(conn, strings.Join(append(cmds, "quit"), "\n")+"\n")
	b, _ := io.ReadAll(r)
	return string(b)
}

func freePort(t testing.TB) int {
	t.Helper()
	port, err := clitest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return port
}

func image(t *testing.T, path string) {
	t.Helper()
	b := make([]byte, 6<<20)
	for i := range 1 << 20 {
		b[i] = byte(rand.IntN(256))
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

const e2eConf = `[global]
base-dir = "%[1]s/base"
worker-limit = 2
status-interval = "1s"
console-port = %[2]d
backoff-initial = "1s"
backoff-max = "2s"

[schedules.fast]
fast = { interval = "4s", keep = 2 }

[jobs.vm1]
schedule = "fast"
verify-sample = 50
source = { type = "file", path = "%[1]s/vm1.img" }

[jobs.vm2]
schedule = "fast"
source = { type = "file", path = "%[1]s/vm2.img" }
`

func TestEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("takes half a minute")
	}
	dir := t.TempDir()
	port := freePort(t)
	conf, logfile := filepath.Join(dir, "backy.conf"), filepath.Join(dir, "daemon.log")
	os.WriteFile(conf, []byte(fmt.Sprintf(e2eConf, dir, port)), 0o644)
	image(t, filepath.Join(dir, "vm1.img"))
	image(t, filepath.Join(dir, "vm2.img"))
	vm1 := filepath.Join(dir, "base", "vm1")
	d := startDaemon(t, "-c", conf, "-l", logfile, "--grace", "10s")

	// Revisions appear, and backy-check sees every job within its SLA.
	eventually(t, time.Minute, "first revisions", func() (bool, string) {
		code, out := backyCheck(t, conf)
		return code == 0 && out[:len("OK: 2 jobs within SLA |")] == "OK: 2 jobs within SLA |", out
	})
	first := revisions(vm1)
	if len(first) == 0 {
		t.Fatal("no revision of vm1")
	}

	// They expire: keep 2, and none older than 2 intervals.
	eventually(t, time.Minute, "expiry of the first revision", func() (bool, string) {
		now := revisions(vm1)
		return !strings.Contains(strings.Join(now, " "), first[0]) && len(now) >= 1, strings.Join(now, " ")
	})
	if n := len(revisions(vm1)); n > 4 {
		t.Errorf("%d revisions of vm1 kept, want at most 4", n)
	}

	// The job log holds the pipelines as a person would type them.
	jobLog, _ := os.ReadFile(filepath.Join(dir, "base", ".backy-schedule", "log", "vm1.log"))
	bin := clitest.BinDir
	for _, want := range []string{
		fmt.Sprintf("$ %s/backy-extract file %s/vm1.img --base-from %s | %s/backy-store -b %s --tags fast\n", bin, dir, vm1, bin, vm1),
		"backy-extract: differential stream of " + dir + "/vm1.img relative to revision:",
		fmt.Sprintf("$ %s/backy-extract file %s/vm1.img --sample 50%% | %s/backy-store -b %s verify -r ", bin, dir, bin, vm1),
		fmt.Sprintf("$ %s/backy-store -b %s expire --schedule fast=4s:2\n", bin, vm1),
		fmt.Sprintf("$ %s/backy-store -b %s purge\n", bin, vm1),
		"backy-store: revision ", "matches the stream", "run succeeded in",
	} {
		if !bytes.Contains(jobLog, []byte(want)) {
			t.Errorf("job log lacks %q", want)
		}
	}

	// The source disappears: runs fail, and once the newest revision is
	// older than 1.5 intervals backy-check says CRITICAL.
	os.Rename(filepath.Join(dir, "vm1.img"), filepath.Join(dir, "vm1.away"))
	eventually(t, time.Minute, "CRITICAL without the source", func() (bool, string) {
		code, out := backyCheck(t, conf)
		return code == 2 && strings.HasPrefix(out, "CRITICAL: 1 of 2 jobs outside SLA: vm1 |") &&
			regexp.MustCompile(`(?m)^CRITICAL: vm1: newest trusted revision is \d+s old, SLA 6s; \d+ failed runs? in a row, last: backup: backy-extract exited 6`).MatchString(out), out
	})
	// The source comes back: the retry (backoff at most 2s) succeeds.
	os.Rename(filepath.Join(dir, "vm1.away"), filepath.Join(dir, "vm1.img"))
	eventually(t, time.Minute, "OK with the source back", func() (bool, string) {
		code, out := backyCheck(t, conf)
		return code == 0, out
	})

	// The console, over a real socket.
	out := console(t, port, "help", "status", "jobs vm2", "run vm2", "run nope", "frobnicate")
	for _, want := range []string{
		"jobs [REGEX]", "config:      " + conf, "workers:     ", "status file: " + dir + "/base/status, every 1s",
		"\nvm2 ", "vm2: ", "error: daemon: no such job \"nope\"", "error: unknown command \"frobnicate\"; type help", "bye\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("console output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "\nvm1 ") {
		t.Errorf("jobs vm2 listed vm1:\n%s", out)
	}

	// SIGHUP: the log is reopened (logrotate moved it) and a new job is read.
	os.Rename(logfile, logfile+".1")
	os.WriteFile(conf, []byte(fmt.Sprintf(e2eConf, dir, port)+strings.ReplaceAll(`
[jobs.vm3]
schedule = "fast"
source = { type = "file", path = "DIR/vm2.img" }
`, "DIR", dir)), 0o644)
	d.Signal(syscall.SIGHUP)
	eventually(t, 30*time.Second, "reload on SIGHUP", func() (bool, string) {
		b, _ := os.ReadFile(logfile)
		return bytes.Contains(b, []byte("reload (SIGHUP): reloaded "+conf+": 3 jobs, 1 added, 0 removed")), string(b)
	})
	eventually(t, time.Minute, "a revision of the new job", func() (bool, string) {
		return len(revisions(filepath.Join(dir, "base", "vm3"))) > 0, ""
	})

	// A bad configuration on SIGHUP is refused; the daemon goes on.
	good, _ := os.ReadFile(conf)
	os.WriteFile(conf, append(good, "\n[global]\n"...), 0o644)
	d.Signal(syscall.SIGHUP)
	eventually(t, 30*time.Second, "refused reload", func() (bool, string) {
		b, _ := os.ReadFile(logfile)
		return bytes.Contains(b, []byte("reload (SIGHUP) failed, keeping the previous configuration: config: "+conf+":")), string(b)
	})
	if out := console(t, port, "jobs"); !strings.Contains(out, "\nvm3 ") {
		t.Errorf("jobs after a refused reload:\n%s", out)
	}
	os.WriteFile(conf, good, 0o644)

	// A second daemon on the same base directory refuses to start.
	second := exec.Command("backy-schedule", "-c", conf)
	second.Env = env()
	msg, err := second.CombinedOutput()
	var ee *exec.ExitError
	want := fmt.Sprintf("backy-schedule: error: daemon: another backy-schedule is running (pid %d) on base directory %s/base (lock %s/base/.backy-schedule/lock)\n",
		d.Pid(), dir, dir)
	if !errors.As(err, &ee) || ee.ExitCode() != 5 || string(msg) != want {
		t.Errorf("second daemon: %v\n%s\nwant exit 5 and\n%s", err, msg, want)
	}

	// SIGTERM: the daemon stops cleanly, and monitoring learns it at once.
	d.Signal(syscall.SIGTERM)
	if code := d.Exit(30 * time.Second); code != 0 {
		t.Errorf("exit code %d after SIGTERM; stderr:\n%s", code, d.Stderr())
	}
	code, out := backyCheck(t, conf)
	if code != 2 || !strings.Contains(out, "backy-schedule is not running: it stopped at ") {
		t.Errorf("backy-check after the daemon stopped: %d\n%s", code, out)
	}
	if st, err := jobstatus.Read(filepath.Join(dir, "base", "status")); err != nil || st.Stopped.IsZero() || len(st.Jobs) != 3 {
		t.Errorf("last status: %v %+v", err, st)
	}
}

func TestSIGTERMEndsLongRunsAfterTheGracePeriod(t *testing.T) {
	dir := t.TempDir()
	conf, logfile := filepath.Join(dir, "backy.conf"), filepath.Join(dir, "daemon.log")
	os.WriteFile(conf, []byte(fmt.Sprintf(`[global]
base-dir = "%s/base"
console-addresses = []
[schedules.default]
daily = { interval = "1d", keep = 9 }
[jobs.slow]
schedule = "default"
source = { type = "command", command = "sleep 60" }
`, dir)), 0o644)
	d := startDaemon(t, "-c", conf, "-l", logfile, "--grace", "1s")
	eventually(t, 30*time.Second, "the slow job running", func() (bool, string) {
		st, err := jobstatus.Read(filepath.Join(dir, "base", "status"))
		return err == nil && st.Jobs["slow"].Running, fmt.Sprint(err)
	})
	start := time.Now()
	d.Signal(syscall.SIGTERM)
	if code := d.Exit(30 * time.Second); code != 0 {
		t.Errorf("exit code %d; stderr:\n%s", code, d.Stderr())
	}
	if took := time.Since(start); took < time.Second || took > 10*time.Second {
		t.Errorf("stopped after %s, want the 1s grace period and a moment", took)
	}
	log, _ := os.ReadFile(logfile)
	for _, want := range []string{"stopping (SIGTERM): 1 runs in progress, grace period 1s", "grace period over: ending 1 runs",
		"slow: run interrupted after", "sh killed by SIGTERM", "stopped\n"} {
		if !bytes.Contains(log, []byte(want)) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	st, err := jobstatus.Read(filepath.Join(dir, "base", "status"))
	if err != nil || st.Jobs["slow"].Failures != 0 || st.Jobs["slow"].LastResult != "interrupted" {
		t.Errorf("status after the stop: %v %+v", err, st.Jobs["slow"])
	}
	// The job log tells the run's end as the daemon's log and the status do.
	jobLog, _ := os.ReadFile(filepath.Join(dir, "base", ".backy-schedule", "log", "slow.log"))
	if !bytes.Contains(jobLog, []byte("backy-schedule: run interrupted after ")) || bytes.Contains(jobLog, []byte("run failed")) {
		t.Errorf("job log does not say the run was interrupted:\n%s", jobLog)
	}
}
