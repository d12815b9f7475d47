package main

import (
	"testing"

	"github.com/backy/backy/internal/clitest"
	"github.com/backy/backy/pkg/rbd/cephtest"
	"github.com/backy/backy/pkg/rbd/librbd"
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
		if c == "librbd" {
			return librbd.Available, nil
		}
		return cond(c)
	}
	cephtest.ScriptSetup(&p)
	clitest.Run(t, p)
}
