package main

import (
	"testing"

	"github.com/backy/backy/internal/clitest"
	"github.com/backy/backy/pkg/daemon/daemontest"
	"github.com/rogpeppe/go-internal/testscript"
)

func TestMain(m *testing.M) { clitest.Main(m, "backy-schedule", run) }

func TestScripts(t *testing.T) {
	p := clitest.Params("testdata/script", clitest.BinDir)
	for name, cmd := range daemontest.Cmds() {
		p.Cmds[name] = cmd
	}
	testscript.Run(t, p)
}
