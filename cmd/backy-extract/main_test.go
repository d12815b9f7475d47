package main

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/backy/backy/internal/clitest"
	"github.com/backy/backy/pkg/rbd/cephtest"
	"github.com/backy/backy/pkg/rbd/librbd"
	"github.com/rogpeppe/go-internal/testscript"
)

// cephM runs the tests under cephtest.Main, which stops the test cluster
// the rbd scripts share once they are done.
type cephM struct{ m *testing.M }

func (c cephM) Run() int { return cephtest.Main(c.m) }

func TestMain(m *testing.M) { clitest.Main(cephM{m}, "backy-extract", run) }

func TestScripts(t *testing.T) {
	p := clitest.Params("testdata/script", clitest.BinDir)
	cond := p.Condition
	p.Condition = func(c string) (bool, error) {
		switch c {
		case "ceph":
			return cephInstalled()
		case "librbd":
			return librbd.Available, nil
		}
		return cond(c)
	}
	p.Cmds["cephcluster"] = cephCluster
	testscript.Run(t, p)
}

// cephInstalled is the condition [ceph]. A missing Ceph is an error, not a
// false condition, when BACKY_REQUIRE_CEPH is set, so CI cannot skip the
// rbd scripts by accident.
func cephInstalled() (bool, error) {
	missing := cephtest.Missing()
	if len(missing) == 0 {
		return true, nil
	}
	if os.Getenv(cephtest.RequireEnv) != "" {
		return false, fmt.Errorf("%s not installed, and %s is set", strings.Join(missing, ", "), cephtest.RequireEnv)
	}
	return false, nil
}

// cephcluster: start the shared test cluster (once per test binary) and
// set CEPH_CONF for the rest of the script. Scripts say "[!ceph] skip"
// before it; without Ceph it fails.
func cephCluster(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 0 {
		ts.Fatalf("usage: cephcluster")
	}
	if missing := cephtest.Missing(); len(missing) > 0 {
		ts.Fatalf("cephcluster: %s not installed", strings.Join(missing, ", "))
	}
	conf, err := cephtest.Shared()
	ts.Check(err)
	ts.Setenv("CEPH_CONF", conf)
}
