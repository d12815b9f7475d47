package cephtest

import (
	"os"
	"os/exec"
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
