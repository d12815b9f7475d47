// Command backy-check is a Nagios/Icinga plugin telling whether every job is
// within its SLA (man/backy-check.1.md).
package main

import (
	"errors"
	"os"

	"github.com/backy/backy/pkg/cli"
)

type checkCLI struct {
	Version cli.VersionFlag `help:"Print the version and exit."`
	Config  string          `short:"c" default:"/etc/backy.conf" help:"Configuration file."`
}

func (c *checkCLI) Run(env *cli.Env) error {
	return errors.New("not implemented yet")
}

func run() int {
	return cli.Run("backy-check", "Nagios/Icinga plugin: are all backup jobs within their SLA?", &checkCLI{}, os.Args[1:])
}

func main() { os.Exit(run()) }
