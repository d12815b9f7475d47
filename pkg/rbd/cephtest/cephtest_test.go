package cephtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestMain(m *testing.M) { os.Exit(Main(m)) }

func TestStartShared(t *testing.T) {
	conf := Start(t)
	if again := Start(t); again != conf {
		t.Fatalf("second Start gave %s, want the shared %s", again, conf)
	}
	Rbd(t, conf, nil, "create", "--size", "4M", "rbd/cephtest")
	if out := string(Rbd(t, conf, nil, "ls", "rbd")); strings.TrimSpace(out) != "cephtest" {
		t.Fatalf("rbd ls = %q, want cephtest", out)
	}
	out, err := exec.Command("ceph", "-c", conf, "osd", "pool", "get", "rbd", "size").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "size: 1" {
		t.Fatalf("pool size: %s %v", out, err)
	}
	if _, err := RunRbd(conf, nil, "info", "rbd/nonexistent"); err == nil {
		t.Fatal("rbd info of a missing image succeeded")
	}
}

func TestMonAdmin(t *testing.T) {
	conf := Start(t)
	if err := SetMonConfig(conf, "paxos_propose_interval", TestProposeInterval); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := SetMonConfig(conf, "paxos_propose_interval", DefaultProposeInterval); err != nil {
			t.Error(err)
		}
	})
	if err := SetMonConfig(conf, "no_such_option", "1"); err == nil {
		t.Fatal("setting an unknown monitor option succeeded")
	}
	before, err := MonCommits(conf)
	if err != nil {
		t.Fatal(err)
	}
	// A snapshot changes the OSD map: at least one commit.
	Rbd(t, conf, nil, "create", "--size", "4M", "rbd/cephtest-mon")
	Rbd(t, conf, nil, "snap", "create", "--no-progress", "rbd/cephtest-mon@s")
	after, err := MonCommits(conf)
	if err != nil {
		t.Fatal(err)
	}
	if after <= before {
		t.Fatalf("commits %d before a snapshot, %d after", before, after)
	}
	start := time.Now()
	if err := WaitMonQuiet(conf, 200*time.Millisecond, time.Minute); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Fatalf("WaitMonQuiet returned after %v, before the quiet time", d)
	}
}

// TestPanicStopsCluster runs a test that starts a cluster and panics (so
// neither Main nor a Cleanup stops it) in a process of its own: the
// cluster's reaper stops its daemons and removes its directory once that
// process is gone.
func TestPanicStopsCluster(t *testing.T) {
	if Missing() != nil {
		Start(t) // skips or fails, as every test here
	}
	confFile := filepath.Join(t.TempDir(), "conf")
	cmd := exec.Command(os.Args[0], "-test.run=^TestPanickingHelper$", "-test.count=1")
	cmd.Env = append(os.Environ(), "BACKY_CEPHTEST_PANIC="+confFile)
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "panic: on purpose") {
		t.Fatalf("the helper test did not panic: %v\n%s", err, out)
	}
	conf, err := os.ReadFile(confFile)
	if err != nil {
		t.Fatalf("the helper test started no cluster: %v\n%s", err, out)
	}
	dir := filepath.Dir(string(conf))
	deadline := time.Now().Add(time.Minute)
	for {
		_, err := os.Stat(dir)
		daemons := daemonsOf(t, string(conf))
		if os.IsNotExist(err) && len(daemons) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a minute after the test process panicked, %s exists (%v) and daemons %v run", dir, err, daemons)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestPanickingHelper(t *testing.T) {
	confFile := os.Getenv("BACKY_CEPHTEST_PANIC")
	if confFile == "" {
		t.Skip("run by TestPanicStopsCluster")
	}
	conf := Start(t)
	if err := os.WriteFile(confFile, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(conf); err != nil {
		t.Fatal(err)
	}
	if d := daemonsOf(t, conf); len(d) != 2 {
		t.Fatalf("daemons of the started cluster: %v, want a monitor and an OSD", d)
	}
	panic("on purpose")
}

// daemonsOf returns the pids of the processes started with conf.
func daemonsOf(t *testing.T, conf string) []string {
	t.Helper()
	procs, err := filepath.Glob("/proc/[0-9]*/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	var pids []string
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // gone meanwhile
		}
		args := strings.Split(string(b), "\x00")
		if len(args) > 0 && strings.HasPrefix(filepath.Base(args[0]), "ceph-") && slices.Contains(args, conf) {
			pids = append(pids, filepath.Base(filepath.Dir(p)))
		}
	}
	return pids
}
