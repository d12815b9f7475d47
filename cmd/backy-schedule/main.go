// Command backy-schedule runs every configured backup job all day
// (man/backy-schedule.1.md).
package main

import (
	"errors"
	"os"

	"github.com/backy/backy/pkg/cli"
)

type scheduleCLI struct {
	Version cli.VersionFlag `help:"Print the version and exit."`
	Config  string          `short:"c" default:"/etc/backy.conf" help:"Configuration file."`
	Logfile string          `short:"l" help:"Log file (default: stderr)."`
}

func (c *scheduleCLI) Run(env *cli.Env) error {
	return errors.New("not implemented yet")
}

func run() int {
	return cli.Run("backy-schedule", "Run the configured backup jobs on their schedules.", &scheduleCLI{}, os.Args[1:])
}

func main() { os.Exit(run()) }
