// Command backy-store reads an extent stream on stdin and commits it as a
// new revision; it also owns repository upkeep (man/backy-store.1.md).
package main

import (
	"fmt"
	"os"

	"github.com/backy/backy/pkg/cli"
	"github.com/backy/backy/pkg/completion"
	"github.com/backy/backy/pkg/progress"
	"github.com/backy/backy/pkg/repo"
	"github.com/backy/backy/pkg/store"
	"github.com/backy/backy/pkg/upkeep"
)

type globals struct {
	Base  string `short:"b" default:"." help:"Repository: a directory, or rados:POOL/JOB (created on first store)." placeholder:"REPO"`
	Quiet bool   `short:"q" help:"Show no progress line on a terminal (store, verify, purge, copy); summary lines still end the run."`
	cli.Ceph
}

// open opens the repository named by -b.
func (g *globals) open(env *cli.Env) (*repo.Repo, error) {
	return repo.Open(g.Base, repo.Via(env.Ctx, g.Conn())...)
}

// show starts the progress line of a long run (nothing off a terminal).
func show(env *cli.Env, g *globals, f progress.Func, items string) *progress.Display {
	return progress.Start(env.Stderr, env.Name, f, progress.Options{Quiet: g.Quiet, Items: items})
}

type storeCmd struct {
	Tags []string `sep:"," help:"Tags for the new revision, comma separated."`
}

// Streams implements cli.Streamer: the extent stream comes on stdin.
func (c *storeCmd) Streams() (stdin, stdout bool) { return true, false }

func (c *storeCmd) Run(env *cli.Env, g *globals) error {
	if cli.IsTerminal(env.Stdin) {
		return fmt.Errorf("%w: stdin is a terminal; pipe an extent stream in (backy-extract file IMAGE | backy-store)", cli.ErrUsage)
	}
	r, err := repo.OpenOrCreate(g.Base, repo.Via(env.Ctx, g.Conn())...)
	if err != nil {
		return err
	}
	defer r.Close() // librados: its connection (and admin socket) ends with the command
	counters := new(store.Counters)
	d := show(env, g, func() (int64, int64) { return counters.Position.Load(), counters.Size.Load() }, "")
	rev, err := store.Store(env.Ctx, r, env.Stdin, store.Options{Tags: c.Tags, Counters: counters})
	d.Stop()
	if err != nil {
		_ = r.DiscardIfEmpty() // a refused first stream leaves no repository behind
		return err
	}
	if _, err := fmt.Fprintln(env.Stdout, rev.ID); err != nil {
		return err
	}
	s := rev.Stats
	env.Log.Info(fmt.Sprintf("revision %s: %s image, %s read, %s written, chunks %d new %d reused %d zero, %.2fs",
		rev.ID, upkeep.HumanBytes(rev.Size), upkeep.HumanBytes(s.StreamBytes),
		upkeep.HumanBytes(s.BytesWritten), s.ChunksNew, s.ChunksReused, s.ChunksZero, s.Duration))
	return nil
}

type statusCmd struct {
	JSON bool `help:"Print JSON instead of a table."`
}

func (c *statusCmd) Run(env *cli.Env, g *globals) error {
	r, err := g.open(env)
	if err != nil {
		return err
	}
	defer r.Close() // librados: its connection (and admin socket) ends with the command
	return upkeep.Status(env.Stdout, r, c.JSON)
}

type storeCLI struct {
	globals
	Version    cli.VersionFlag    `help:"Print the version and exit."`
	Completion cli.CompletionFlag `placeholder:"SHELL" predictor:"shell" help:"Print the shell completion script (bash or zsh) and exit."`
	Store      storeCmd           `cmd:"" default:"withargs" help:"Read an extent stream on stdin and commit it as a new revision (the default)."`
	Status     statusCmd          `cmd:"" help:"List the revisions: date, id, size, bytes written, duration, tags, consistency, trust."`
	Verify     verifyCmd          `cmd:"" help:"Re-read and re-hash chunks, or compare a revision with an extent stream (--against)."`
	Distrust   distrustCmd        `cmd:"" help:"Mark revisions distrusted: no differential backup builds on them, reused chunks are re-verified."`
	Tags       tagsCmd            `cmd:"" help:"Add, remove or set the tags of a revision."`
	Forget     forgetCmd          `cmd:"" help:"Remove a revision (its chunks go at the next purge)."`
	Expire     expireCmd          `cmd:"" help:"Apply a schedule's retention: untag old revisions, remove those left without tags."`
	Purge      purgeCmd           `cmd:"" help:"Remove chunks no revision uses and leftovers of interrupted stores."`
	Copy       copyCmd            `cmd:"" help:"Copy revisions to another repository (--to), moving only the chunks it lacks."`
}

func run() int {
	var c storeCLI
	return cli.Run("backy-store", "Store extent streams as revisions of a backy repository, and look after it.", &c, os.Args[1:], &c.globals, completion.Predictors())
}

func main() { os.Exit(run()) }
