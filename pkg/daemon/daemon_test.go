package daemon

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/backy/backy/internal/clitest"
	"github.com/backy/backy/pkg/config"
	"github.com/backy/backy/pkg/jobstatus"
	"github.com/backy/backy/pkg/repo"
	"github.com/backy/backy/pkg/upkeep"
)

// fakeRunner stores an empty revision with the run's tags, like a real run
// would, unless the job is held: then it waits for release or the end of the
// run's context.
type fakeRunner struct {
	t       *testing.T
	mu      sync.Mutex
	hold    map[string]chan error
	started chan string
}

func (f *fakeRunner) Run(ctx context.Context, job config.Job, tags []string, stage func(string), _ func(*Result)) Result {
	stage("backup")
	f.mu.Lock()
	release := f.hold[job.Name]
	f.mu.Unlock()
	f.started <- job.Name
	if release != nil {
		select {
		case err := <-release:
			if err != nil {
				return Result{Err: err}
			}
		case <-ctx.Done():
			return Result{Err: errors.New("backy-extract killed by SIGTERM")}
		}
	}
	r, err := repo.OpenOrCreate(job.Directory)
	if err != nil {
		return Result{Err: err}
	}
	rev := &repo.Revision{ID: repo.NewRevisionID(), Time: time.Now(), Kind: "full", Tags: tags, Trust: repo.Trusted, Size: 1}
	if err := r.Commit(rev, repo.NewIndex(1)); err != nil {
		return Result{Err: err}
	}
	return Result{Revision: rev.ID}
}

func freePort(t *testing.T) int {
	t.Helper()
	port, err := clitest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return port
}

type harness struct {
	t       *testing.T
	dir     string
	conf    string
	port    int
	runner  *fakeRunner
	signals chan os.Signal
	result  chan error
	log     *strings.Builder
	logMu   *sync.Mutex
	once    sync.Once
	err     error
}

func writeConf(t *testing.T, path, base string, port int, jobs ...string) {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "[global]\nbase-dir = %q\nconsole-port = %d\nstatus-interval = \"1s\"\n", base, port)
	b.WriteString("[schedules.default]\ndaily = { interval = \"1d\", keep = 9 }\n")
	for _, j := range jobs {
		fmt.Fprintf(&b, "[jobs.%s]\nschedule = \"default\"\nsource = { type = \"command\", command = \"true\" }\n", j)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

type syncWriter struct {
	mu *sync.Mutex
	b  *strings.Builder
}

func (w syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func startDaemon(t *testing.T, hold ...string) *harness {
	t.Helper()
	h := &harness{t: t, dir: t.TempDir(), port: freePort(t), signals: make(chan os.Signal, 4), result: make(chan error, 1),
		log: &strings.Builder{}, logMu: &sync.Mutex{}}
	h.conf = filepath.Join(h.dir, "backy.conf")
	writeConf(t, h.conf, filepath.Join(h.dir, "base"), h.port, "vm1", "vm2")
	h.runner = &fakeRunner{t: t, hold: map[string]chan error{}, started: make(chan string, 100)}
	for _, j := range hold {
		h.runner.hold[j] = make(chan error)
	}
	cfg, err := config.Load(h.conf)
	if err != nil {
		t.Fatal(err)
	}
	log, _ := OpenLog("", syncWriter{h.logMu, h.log})
	go func() {
		h.result <- Run(context.Background(), Options{ConfigPath: h.conf, Config: cfg, Log: log, Signals: h.signals,
			Grace: 200 * time.Millisecond, Version: "test", Runner: h.runner})
	}()
	t.Cleanup(func() {
		h.signals <- syscall.SIGTERM
		h.signals <- syscall.SIGTERM
		h.wait()
	})
	return h
}

// wait returns what Run returned, once it has.
func (h *harness) wait() error {
	h.once.Do(func() {
		select {
		case h.err = <-h.result:
		case <-time.After(20 * time.Second):
			h.err = errors.New("daemon did not stop")
		}
	})
	return h.err
}

func (h *harness) logText() string {
	h.logMu.Lock()
	defer h.logMu.Unlock()
	return h.log.String()
}

func (h *harness) waitStarted(want string) {
	h.t.Helper()
	select {
	case got := <-h.runner.started:
		if got != want {
			h.t.Fatalf("started %s, want %s", got, want)
		}
	case <-time.After(10 * time.Second):
		h.t.Fatalf("%s did not start; log:\n%s", want, h.logText())
	}
}

// waitIdle waits until no job runs.
func (h *harness) waitIdle() {
	h.t.Helper()
	for i := 0; i < 500; i++ {
		if strings.Contains(h.console("status"), "workers:     0 of") {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	h.t.Fatal("jobs still running")
}

// console sends commands over a real TCP connection and returns everything
// the daemon answered after its greeting, up to the end of the connection.
func (h *harness) console(cmds ...string) string {
	h.t.Helper()
	var conn net.Conn
	var err error
	for i := 0; i < 100; i++ {
		if conn, err = net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", h.port)); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		h.t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(conn)
	greeting, _ := r.ReadString('\n')
	if !strings.HasPrefix(greeting, "backy-schedule test console") {
		h.t.Fatalf("greeting %q", greeting)
	}
	fmt.Fprint(conn, strings.Join(append(cmds, "quit"), "\n")+"\n")
	b, _ := io.ReadAll(r)
	return strings.TrimSuffix(string(b), "bye\n")
}

// squeeze turns runs of spaces into one, so tables can be matched.
func squeeze(s string) string {
	var lines []string
	for _, l := range strings.Split(s, "\n") {
		lines = append(lines, strings.Join(strings.Fields(l), " "))
	}
	return strings.Join(lines, "\n")
}

func expect(t *testing.T, got string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(got, w) {
			t.Errorf("missing %q in:\n%s", w, got)
		}
	}
}

func TestConsole(t *testing.T) {
	h := startDaemon(t, "vm1")
	h.waitStarted("vm1") // worker-limit 1: vm2 waits

	expect(t, h.console("status"), "workers:     1 of 1 busy", "jobs:        2: 1 running, 1 queued, 0 failing",
		"sla:         0 ok, 0 outside, 2 without a trusted revision")
	jobs := h.console("jobs")
	expect(t, squeeze(jobs), "JOB STATE SLA", "vm1 running:backup none - - - since", "vm2 queued none")
	if got := h.console("jobs 2$"); strings.Contains(got, "vm1") || !strings.Contains(got, "vm2") {
		t.Errorf("jobs 2$:\n%s", got)
	}
	expect(t, h.console("jobs nomatch"), "no jobs match")
	expect(t, h.console("jobs ("), "error: error parsing regexp")
	expect(t, h.console("run vm1", "run vm2", "run nope", "run"),
		"vm1: already running\n", "vm2: queued: all 1 workers are busy\n",
		"error: daemon: no such job \"nope\"\n", "error: wrong arguments for run; type help\n")
	expect(t, h.console("help", "frobnicate"), "jobs [REGEX]", "runall", "error: unknown command \"frobnicate\"; type help")

	h.runner.hold["vm1"] <- nil
	h.waitStarted("vm2")
	h.waitIdle()
	expect(t, h.console("runall"), "runall: 1 started, 1 queued, 0 already running")
	h.waitStarted("vm1")
	h.runner.hold["vm1"] <- errors.New("backy-extract exited 6")
	h.waitStarted("vm2")
	h.waitIdle()
	jobs = h.console("jobs")
	expect(t, squeeze(jobs), "vm1 failing ok", "vm2 idle ok")
	// Every row fills the last column, CONSISTENCY ("-": not known).
	lines := strings.Split(strings.TrimSpace(jobs), "\n")
	col := strings.Index(lines[0], "CONSISTENCY")
	for _, l := range lines[1:] {
		if len(l) <= col || l[col:] != "-" {
			t.Errorf("no CONSISTENCY in %q (header %q)", l, lines[0])
		}
	}
	expect(t, h.logText(), "vm1: run started by hand with tags daily", "vm1: run failed after", "failure 1, next try")
}

func TestReloadAndHangup(t *testing.T) {
	h := startDaemon(t)
	h.waitStarted("vm1")
	h.waitStarted("vm2")
	writeConf(t, h.conf, filepath.Join(h.dir, "base"), h.port, "vm1", "vm3")
	expect(t, h.console("reload"), "reloaded "+h.conf+": 2 jobs, 1 added, 1 removed")
	h.waitStarted("vm3")

	// A configuration with a mistake is refused as a whole; the daemon
	// keeps the one it has.
	os.WriteFile(h.conf, []byte("[global]\nbase-dri = \"/x\"\n"), 0o644)
	expect(t, h.console("reload"), `error: reload failed, keeping the previous configuration: config: `+h.conf+`:2: unknown key "global.base-dri"`)
	h.signals <- syscall.SIGHUP
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(h.logText(), "reload (SIGHUP) failed") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	expect(t, h.logText(), "reload (SIGHUP) failed, keeping the previous configuration")
	expect(t, h.console("jobs"), "vm1", "vm3")

	// A status file moved to a new directory is written there at once; one
	// under a file, which could not be written, refuses the reload.
	withStatus := func(path string) {
		writeConf(t, h.conf, filepath.Join(h.dir, "base"), h.port, "vm1", "vm3")
		b, _ := os.ReadFile(h.conf)
		os.WriteFile(h.conf, []byte(strings.Replace(string(b), "[global]\n", fmt.Sprintf("[global]\nstatus-file = %q\n", path), 1)), 0o644)
	}
	moved := filepath.Join(h.dir, "base", "sub", "dir", "status")
	withStatus(moved)
	expect(t, h.console("reload"), "reloaded "+h.conf)
	deadline = time.Now().Add(5 * time.Second)
	for _, err := jobstatus.Read(moved); err != nil; _, err = jobstatus.Read(moved) {
		if time.Now().After(deadline) {
			t.Fatalf("no status file at %s after the reload: %v", moved, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	os.WriteFile(filepath.Join(h.dir, "afile"), nil, 0o644)
	withStatus(filepath.Join(h.dir, "afile", "status"))
	expect(t, h.console("reload"), "error: reload failed, keeping the previous configuration: daemon: status file: fsperm: "+filepath.Join(h.dir, "afile")+": not a directory")

	// base-dir is what the daemon's lock holds: it cannot move.
	writeConf(t, h.conf, filepath.Join(h.dir, "elsewhere"), h.port, "vm1")
	expect(t, h.console("reload"), "base-dir cannot change")
}

func TestSecondDaemonIsRefused(t *testing.T) {
	h := startDaemon(t)
	h.waitStarted("vm1")
	cfg, _ := config.Load(h.conf)
	cfg.Global.ConsoleAddresses = nil
	log, _ := OpenLog("", io.Discard)
	err := Run(context.Background(), Options{ConfigPath: h.conf, Config: cfg, Log: log, Runner: h.runner})
	if !errors.Is(err, ErrRunning) || !strings.Contains(err.Error(), fmt.Sprintf("(pid %d) on base directory %s", os.Getpid(), cfg.Global.BaseDir)) {
		t.Fatalf("second daemon: %v", err)
	}
}

func TestStopGivesGraceThenEndsRuns(t *testing.T) {
	h := startDaemon(t, "vm1")
	h.waitStarted("vm1")
	start := time.Now()
	h.signals <- syscall.SIGTERM
	if err := h.wait(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Errorf("stopped after %s, before the grace period", d)
	}
	st, err := jobstatus.Read(filepath.Join(h.dir, "base", "status"))
	if err != nil {
		t.Fatal(err)
	}
	if st.Stopped.IsZero() || st.Jobs["vm1"].LastResult != "interrupted" || st.Jobs["vm1"].Failures != 0 {
		t.Errorf("last status: stopped %s, vm1 %+v", st.Stopped, st.Jobs["vm1"])
	}
	expect(t, h.logText(), "stopping (SIGTERM): 1 runs in progress", "grace period over: ending 1 runs", "vm1: run interrupted", "stopped")
	if _, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", h.port)); err == nil {
		t.Error("console still listening")
	}
}

// The console's CONSISTENCY cell shows a freeze time as backy-store
// status does.
func TestConsistencyCell(t *testing.T) {
	for _, c := range []struct {
		js   jobstatus.Job
		want string
	}{
		{jobstatus.Job{Consistency: "frozen", FrozenSeconds: 0.4}, "frozen 400ms"},
		{jobstatus.Job{Consistency: "frozen", FrozenSeconds: 1.234}, "frozen 1.23s"},
		{jobstatus.Job{Consistency: "agent"}, "agent"},
		{jobstatus.Job{Consistency: "crash", CrashRuns: 1}, "crash"},
		{jobstatus.Job{Consistency: "crash", CrashRuns: 3}, "crash x3"},
		{jobstatus.Job{}, "-"},
	} {
		if got := consistencyCell(c.js); got != c.want {
			t.Errorf("%+v: %q, want %q", c.js, got, c.want)
		}
		if c.js.Consistency == "frozen" {
			rev := &repo.Revision{Consistency: "frozen", FrozenSeconds: c.js.FrozenSeconds}
			if status := upkeep.Consistency(rev); status != c.want {
				t.Errorf("backy-store status shows %q, the console %q", status, c.want)
			}
		}
	}
}
