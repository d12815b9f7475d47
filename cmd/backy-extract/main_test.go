package main

import (
	"testing"

	"github.com/backy/backy/internal/clitest"
	"github.com/rogpeppe/go-internal/testscript"
)

func TestMain(m *testing.M) { clitest.Main(m, "backy-extract", run) }

func TestScripts(t *testing.T) {
	testscript.Run(t, clitest.Params("testdata/script", clitest.BinDir))
}
