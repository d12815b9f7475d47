// Command backy-schedule runs every configured backup job all day
// (man/backy-schedule.1.md).
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/backy/backy/pkg/cli"
	"github.com/backy/backy/pkg/config"
	"github.com/backy/backy/pkg/daemon"
)

type scheduleCLI struct {
	Version     cli.VersionFlag    `help:"Print the version and exit."`
	Completion  cli.CompletionFlag `placeholder:"SHELL" predictor:"shell" help:"Print the shell completion script (bash or zsh) and exit."`
	Config      string             `short:"c" default:"/etc/backy.conf" placeholder:"FILE" help:"Configuration file (default: ${default})."`
	Logfile     string             `short:"l" placeholder:"FILE" help:"Log file (default: stderr); reopened on SIGHUP."`
	Grace       time.Duration      `default:"60s" placeholder:"DURATION" help:"How long running jobs may go on after SIGTERM before they are stopped (default: ${default})."`
	CheckConfig bool               `help:"Check the configuration and that every file source exists, then exit."`
}

func (c *scheduleCLI) Run(env *cli.Env) error {
	// The flags are checked first: a bad one is a usage error (2) whatever
	// is wrong with the configuration.
	if c.Grace < 0 {
		return fmt.Errorf("%w: --grace must not be negative", cli.ErrUsage)
	}
	// Signals are taken over before anything else, so that a SIGHUP during
	// start-up cannot end the daemon. The daemon gets them all on its own
	// channel (not env.Ctx): a second SIGTERM must be told from the first.
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)

	// The absolute path goes into the status file and the log, and reloads
	// read the same file whatever the working directory.
	if abs, err := filepath.Abs(c.Config); err == nil {
		c.Config = abs
	}
	cfg, err := config.Load(c.Config)
	if err != nil {
		return problems(env, err)
	}
	if c.CheckConfig {
		return checkConfig(env, cfg)
	}
	log, err := daemon.OpenLog(c.Logfile, env.Stderr)
	if err != nil {
		return err
	}
	defer log.Close()
	return daemon.Run(context.Background(), daemon.Options{
		ConfigPath: c.Config, Config: cfg, Log: log, Signals: sigs, Grace: c.Grace, Version: cli.VersionString(),
	})
}

// problems prints every problem of a configuration, one a line, and
// returns an error that says how many there were.
func problems(env *cli.Env, err error) error {
	var list config.List
	if !errors.As(err, &list) || len(list) < 2 {
		return err
	}
	for _, e := range list {
		env.Log.Error(e.Error())
	}
	return fmt.Errorf("%w: %d problems in %s", config.ErrInvalid, len(list), list[0].File)
}

// checkConfig reports the jobs whose file source is missing.
func checkConfig(env *cli.Env, cfg *config.Config) error {
	missing := 0
	for _, name := range cfg.JobNames() {
		if err := cfg.Jobs[name].CheckSource(); err != nil {
			env.Log.Error(err.Error())
			missing++
		}
	}
	if missing > 0 {
		return fmt.Errorf("%w: %d of %d jobs", config.ErrSourceMissing, missing, len(cfg.Jobs))
	}
	env.Log.Info(fmt.Sprintf("%s is fine: %d jobs, %d schedules", cfg.File, len(cfg.Jobs), len(cfg.Schedules)))
	return nil
}

func run() int {
	return cli.Run("backy-schedule", "Run the configured backup jobs on their schedules.", &scheduleCLI{}, os.Args[1:])
}

func main() { os.Exit(run()) }
