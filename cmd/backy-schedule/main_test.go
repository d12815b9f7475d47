package main

import (
	"testing"

	"github.com/backy/backy/internal/clitest"
	"github.com/backy/backy/internal/freezetest"
	"github.com/backy/backy/pkg/daemon/daemontest"
	"github.com/backy/backy/pkg/rbd/cephtest"
)

// cephM runs the tests under cephtest.Main, which stops the test cluster
// the RBD tests share once they are done.
type cephM struct{ m *testing.M }

func (c cephM) Run() int { return cephtest.Main(c.m) }

// The test binary is also the namespace builder of the qemu-ga tests
// (freezetest.MaybeChild).
func TestMain(m *testing.M) {
	freezetest.MaybeChild()
	clitest.Main(cephM{m}, "backy-schedule", run)
}

func TestScripts(t *testing.T) {
	p := clitest.Params("testdata/script", clitest.BinDir)
	for name, cmd := range daemontest.Cmds() {
		p.Cmds[name] = cmd
	}
	clitest.Run(t, p)
}
