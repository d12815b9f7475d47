package cephtest

import (
	"os"
	"os/exec"
	"strings"
	"testing"
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
