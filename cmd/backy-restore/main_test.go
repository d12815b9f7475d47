package main

import (
	"testing"

	"github.com/backy/backy/internal/clitest"
)

func TestMain(m *testing.M) { clitest.Main(m, "backy-restore", run) }

func TestScripts(t *testing.T) {
	clitest.Run(t, clitest.Params("testdata/script", clitest.BinDir))
}
