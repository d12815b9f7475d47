// Command backy-check is a Nagios/Icinga plugin telling whether every job is
// within its SLA (man/backy-check.1.md).
package main

import (
	"fmt"
	"os"
	"time"

	"github.com/backy/backy/pkg/check"
	"github.com/backy/backy/pkg/cli"
	"github.com/backy/backy/pkg/exitcode"
)

type checkCLI struct {
	Version    cli.VersionFlag    `help:"Print the version and exit."`
	Completion cli.CompletionFlag `placeholder:"SHELL" predictor:"shell" help:"Print the shell completion script (bash or zsh) and exit."`
	Config     string             `short:"c" default:"/etc/backy.conf" placeholder:"FILE" help:"Configuration file (default: ${default})."`
	Timeout    time.Duration      `short:"t" default:"50s" placeholder:"DURATION" help:"Give up with UNKNOWN after this long (default: ${default})."`

	state int
}

// Run prints the report on stdout, where Nagios reads it, and keeps the
// state for the exit code; nothing goes to stderr.
func (c *checkCLI) Run(env *cli.Env) error {
	if c.Timeout <= 0 {
		return fmt.Errorf("%w: --timeout must be positive", cli.ErrUsage)
	}
	done := make(chan *check.Report, 1)
	go func() { done <- check.Check(c.Config, time.Now()) }()
	var r *check.Report
	select {
	case r = <-done:
	case <-time.After(c.Timeout):
		r = check.Unknowable(fmt.Errorf("backy-check timed out after %s", c.Timeout))
	}
	c.state = r.State
	return r.Write(env.Stdout)
}

func run() int {
	c := &checkCLI{}
	code := cli.Run("backy-check", "Nagios/Icinga plugin: are all backup jobs within their SLA?", c, os.Args[1:])
	switch code {
	case exitcode.OK:
		return c.state
	case exitcode.Usage:
		// The plugin guidelines want UNKNOWN for a bad command line; 2
		// would read as CRITICAL. Monitoring reads stdout only.
		fmt.Println("UNKNOWN: bad command line; see backy-check --help")
		return check.Unknown
	}
	return code
}

func main() { os.Exit(run()) }
