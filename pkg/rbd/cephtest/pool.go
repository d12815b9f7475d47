package cephtest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
)

// Pool creates a fresh pool on the cluster of conf for t (a RADOS
// repository's pool) and deletes it when t ends.
func Pool(t testing.TB, conf, name string) string {
	t.Helper()
	if err := CreatePool(conf, name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := DeletePool(conf, name); err != nil {
			t.Error(err)
		}
	})
	return name
}

// CreatePool creates pool name (8 placement groups, size 1).
func CreatePool(conf, name string) error {
	if _, err := runTool("ceph", conf, nil, "osd", "pool", "create", name, "8", "8", "replicated"); err != nil {
		return err
	}
	_, err := runTool("ceph", conf, nil, "osd", "pool", "application", "enable", name, "backy")
	return err
}

// DeletePool deletes pool name and everything in it.
func DeletePool(conf, name string) error {
	_, err := runTool("ceph", conf, nil, "osd", "pool", "rm", name, name, "--yes-i-really-really-mean-it")
	return err
}

// Rados runs `rados -c conf args...` and returns its standard output.
func Rados(conf string, stdin []byte, args ...string) ([]byte, error) {
	return runTool("rados", conf, stdin, args...)
}

func runTool(prog, conf string, stdin []byte, args ...string) ([]byte, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(prog, append([]string{"-c", conf}, args...)...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = bytes.NewReader(stdin), &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), fmt.Errorf("cephtest: %s %s: %w: %s", prog, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), nil
}

// Objects lists the objects of pool whose names start with prefix, sorted.
func Objects(conf, pool, prefix string) ([]string, error) {
	out, err := Rados(conf, nil, "-p", pool, "ls")
	if err != nil {
		return nil, err
	}
	var names []string
	for _, n := range strings.Fields(string(out)) {
		if strings.HasPrefix(n, prefix) {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names, nil
}

// ScriptSetup adds to testscript parameters what scripts on the cluster
// use: the condition [ceph] (false without the Ceph binaries; an error
// instead when RequireEnv is set, so CI cannot skip by accident) and the
// commands
//
//	cephcluster              start the shared cluster, set CEPH_CONF
//	cephpool NAME            create pool NAME, deleted when the script ends
//	radosobj POOL PREFIX N   the pool has N objects named PREFIX...
//
// The test binary must run under Main.
func ScriptSetup(p *testscript.Params) {
	cond := p.Condition
	p.Condition = func(c string) (bool, error) {
		if c == "ceph" {
			missing := Missing()
			if len(missing) == 0 {
				return true, nil
			}
			if os.Getenv(RequireEnv) != "" {
				return false, fmt.Errorf("%s not installed, and %s is set", strings.Join(missing, ", "), RequireEnv)
			}
			return false, nil
		}
		if cond == nil {
			return false, fmt.Errorf("unknown condition %q", c)
		}
		return cond(c)
	}
	if p.Cmds == nil {
		p.Cmds = map[string]func(*testscript.TestScript, bool, []string){}
	}
	p.Cmds["cephcluster"] = cephCluster
	p.Cmds["cephpool"] = cephPool
	p.Cmds["radosobj"] = radosObj
}

func cephCluster(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 0 {
		ts.Fatalf("usage: cephcluster")
	}
	if missing := Missing(); len(missing) > 0 {
		ts.Fatalf("cephcluster: %s not installed", strings.Join(missing, ", "))
	}
	conf, err := Shared()
	ts.Check(err)
	ts.Setenv("CEPH_CONF", conf)
}

func cephPool(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: cephpool NAME")
	}
	conf := ts.Getenv("CEPH_CONF")
	ts.Check(CreatePool(conf, args[0]))
	ts.Defer(func() { ts.Check(DeletePool(conf, args[0])) })
}

func radosObj(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 3 {
		ts.Fatalf("usage: radosobj POOL PREFIX N")
	}
	names, err := Objects(ts.Getenv("CEPH_CONF"), args[0], args[1])
	ts.Check(err)
	if fmt.Sprint(len(names)) != args[2] {
		ts.Fatalf("pool %s has %d objects named %s..., want %s: %s", args[0], len(names), args[1], args[2], strings.Join(names, " "))
	}
}
