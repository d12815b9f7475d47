package main

import (
	"fmt"
	"os"
	"testing"

	"github.com/backy/backy/internal/clitest"
	"github.com/rogpeppe/go-internal/testscript"
)

var binDir string

func TestMain(m *testing.M) {
	var err error
	if binDir, err = clitest.BuildCommands("backy-restore"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer os.RemoveAll(binDir)
	testscript.Main(m, map[string]func(){"backy-restore": func() { os.Exit(run()) }})
}

func TestScripts(t *testing.T) {
	testscript.Run(t, clitest.Params("testdata/script", binDir))
}
