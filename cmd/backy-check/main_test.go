package main

import (
	"testing"

	"github.com/backy/backy/internal/clitest"
	"github.com/backy/backy/pkg/daemon/daemontest"
)

func TestMain(m *testing.M) { clitest.Main(m, "backy-check", run) }

func TestScripts(t *testing.T) {
	p := clitest.Params("testdata/script", clitest.BinDir)
	for name, cmd := range daemontest.Cmds() {
		p.Cmds[name] = cmd
	}
	clitest.Run(t, p)
}
