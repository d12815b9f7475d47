// Command backy-store reads an extent stream on stdin and commits it as a
// new revision; it also owns repository upkeep (man/backy-store.1.md).
package main

import (
	"fmt"
	"os"
	"time"

	"github.com/backy/backy/pkg/cli"
	"github.com/backy/backy/pkg/repo"
	"github.com/backy/backy/pkg/store"
	"github.com/backy/backy/pkg/upkeep"
)

type globals struct {
	Base string `short:"b" default:"." help:"Repository directory (created on first store)." placeholder:"DIR"`
}

type storeCmd struct {
	Tags []string `sep:"," help:"Tags for the new revision, comma separated."`
}

func (c *storeCmd) Run(env *cli.Env, g *globals) error {
	if cli.IsTerminal(env.Stdin) {
		return fmt.Errorf("%w: stdin is a terminal; pipe an extent stream in (backy-extract file IMAGE | backy-store)", cli.ErrUsage)
	}
	r, err := repo.OpenOrCreate(g.Base)
	if err != nil {
		return err
	}
	counters := new(store.Counters)
	stop := progress(env, counters)
	rev, err := store.Store(env.Ctx, r, env.Stdin, store.Options{Tags: c.Tags, Counters: counters})
	stop()
	if err != nil {
		_ = r.DiscardIfEmpty() // a refused first stream leaves no repository behind
		return err
	}
	fmt.Fprintln(env.Stdout, rev.ID)
	s := rev.Stats
	fmt.Fprintf(env.Stderr, "%s: revision %s: %s image, %s read, %s written, chunks %d new %d reused %d zero, %.2fs\n",
		env.Name, rev.ID, upkeep.HumanBytes(rev.Size), upkeep.HumanBytes(s.StreamBytes),
		upkeep.HumanBytes(s.BytesWritten), s.ChunksNew, s.ChunksReused, s.ChunksZero, s.Duration)
	return nil
}

// progress shows a live line while stderr is a terminal.
func progress(env *cli.Env, c *store.Counters) func() {
	f, ok := env.Stderr.(*os.File)
	if !ok || !cli.IsTerminal(f) {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				fmt.Fprint(f, "\r\033[K")
				return
			case <-t.C:
				fmt.Fprintf(f, "\r\033[K%s: %s read, %d new, %d reused, %d zero chunks", env.Name,
					upkeep.HumanBytes(c.StreamBytes.Load()), c.ChunksNew.Load(), c.ChunksReused.Load(), c.ChunksZero.Load())
			}
		}
	}()
	return func() { close(done) }
}

type statusCmd struct {
	JSON bool `help:"Print JSON instead of a table."`
}

func (c *statusCmd) Run(env *cli.Env, g *globals) error {
	r, err := repo.Open(g.Base)
	if err != nil {
		return err
	}
	return upkeep.Status(env.Stdout, r, c.JSON)
}

type storeCLI struct {
	globals
	Version  cli.VersionFlag `help:"Print the version and exit."`
	Store    storeCmd        `cmd:"" default:"withargs" help:"Read an extent stream on stdin and commit it as a new revision (the default)."`
	Status   statusCmd       `cmd:"" help:"List the revisions: date, id, size, duration, tags, trust."`
	Verify   verifyCmd       `cmd:"" help:"Re-read and re-hash chunks, or compare a revision with an extent stream (--against)."`
	Distrust distrustCmd     `cmd:"" help:"Mark revisions distrusted: no differential backup builds on them, reused chunks are re-verified."`
	Tags     tagsCmd         `cmd:"" help:"Add, remove or set the tags of a revision."`
	Forget   forgetCmd       `cmd:"" help:"Remove a revision (its chunks go at the next purge)."`
	Expire   expireCmd       `cmd:"" help:"Apply a schedule's retention: untag old revisions, remove those left without tags."`
	Purge    purgeCmd        `cmd:"" help:"Remove chunks no revision uses and leftovers of interrupted stores."`
}

func run() int {
	var c storeCLI
	return cli.Run("backy-store", "Store extent streams as revisions of a backy repository, and look after it.", &c, os.Args[1:], &c.globals)
}

func main() { os.Exit(run()) }
