package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/backy/backy/internal/clitest"
	"github.com/backy/backy/pkg/rbd/cephtest"
	"github.com/backy/backy/pkg/repo"
	"github.com/rogpeppe/go-internal/testscript"
)

func TestMain(m *testing.M) { clitest.Main(cleanFixture{m}, "backy-nbd", run) }

// cephM runs the tests under cephtest.Main, which stops the test cluster
// the rados script starts.
type cephM struct{ m testscript.TestingM }

func (c cephM) Run() int { return cephtest.Main(c.m) }

// cleanFixture removes the shared fixture after the tests ran.
type cleanFixture struct{ m testscript.TestingM }

func (c cleanFixture) Run() int {
	defer func() {
		if fixDir != "" {
			os.RemoveAll(fixDir)
		}
		if mfixDir != "" {
			os.RemoveAll(mfixDir)
		}
	}()
	return cephM{c.m}.Run()
}

func TestScripts(t *testing.T) {
	p := clitest.Params("testdata/script", clitest.BinDir)
	p.Cmds["freeport"] = freeport
	p.Cmds["waitport"] = waitport
	p.Cmds["waitfile"] = waitfile
	cond := p.Condition
	p.Condition = func(c string) (bool, error) {
		if name, ok := strings.CutPrefix(c, "tool:"); ok {
			return haveTool(name)
		}
		if c == "rados" {
			return repo.RadosAvailable, nil
		}
		return cond(c)
	}
	cephtest.ScriptSetup(&p)
	setup := p.Setup
	p.Setup = func(env *testscript.Env) error {
		// whatever a script leaves mounted below $WORK (it failed, or a
		// background mount was killed) is unmounted, its helpers killed
		work := env.WorkDir
		env.Defer(func() {
			ms := fuseMountsBelow(t, work)
			for i := len(ms) - 1; i >= 0; i-- {
				exec.Command("fusermount3", "-uz", ms[i]).Run()
			}
			for _, pid := range helpersBelow(work) {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		})
		if setup != nil {
			return setup(env)
		}
		return nil
	}
	clitest.Run(t, p)
}

// packages names the Debian package of every client the tests use.
var packages = map[string]string{
	"nbdinfo": "libnbd-bin", "nbdcopy": "libnbd-bin", "nbdfuse": "nbdfuse",
	"qemu-img": "qemu-utils", "qemu-io": "qemu-utils", "qemu-nbd": "qemu-utils",
	"mke2fs": "e2fsprogs", "debugfs": "e2fsprogs", "fusermount3": "fuse3",
	"sfdisk": "fdisk", "sgdisk": "gdisk",
}

// lookTool finds a client, also in the sbin directories a non-root PATH
// lacks (e2fsprogs).
func lookTool(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/sbin"} {
		if p, err := exec.LookPath(filepath.Join(dir, name)); err == nil {
			return p, nil
		}
	}
	msg := fmt.Sprintf("%s not found: install the Debian package %s", name, packages[name])
	if os.Getenv("BACKY_REQUIRE_TOOLS") == "1" {
		return "", fmt.Errorf("%s (BACKY_REQUIRE_TOOLS=1)", msg)
	}
	return "", fmt.Errorf("%s", msg)
}

// haveTool is the script condition [tool:NAME]: false when the client is
// missing, so the script can skip naming the package, and an error (a
// failed script) when BACKY_REQUIRE_TOOLS=1.
func haveTool(name string) (bool, error) {
	if _, err := lookTool(name); err != nil {
		if os.Getenv("BACKY_REQUIRE_TOOLS") == "1" {
			return false, err
		}
		return false, nil
	}
	return true, nil
}

// needTool returns a client's path, skipping the test when it is missing
// or failing it when BACKY_REQUIRE_TOOLS=1.
func needTool(t testing.TB, name string) string {
	t.Helper()
	p, err := lookTool(name)
	if err != nil {
		if os.Getenv("BACKY_REQUIRE_TOOLS") == "1" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	return p
}

// freeport VAR: set VAR to a TCP port on loopback that is free right now.
func freeport(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: freeport VAR")
	}
	port, err := clitest.FreePort()
	ts.Check(err)
	ts.Setenv(args[0], strconv.Itoa(port))
}

// waitfile PATH: wait up to 30 s until PATH exists.
func waitfile(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: waitfile PATH")
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(ts.MkAbs(args[0])); err == nil {
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("%s did not appear within 30s", args[0])
		}
	}
}

// waitport HOST:PORT or waitport unix:PATH: wait up to 20 s until something
// accepts connections there.
func waitport(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: waitport HOST:PORT|unix:PATH")
	}
	network, addr := "tcp", args[0]
	if p, ok := strings.CutPrefix(addr, "unix:"); ok {
		network, addr = "unix", p
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial(network, addr); err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("nothing listens on %s", args[0])
		}
	}
}
