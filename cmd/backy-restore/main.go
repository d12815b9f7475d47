// Command backy-restore gives a revision back as a raw image, an extent
// stream or an rbd diff (man/backy-restore.1.md).
package main

import (
	"bufio"
	"os"

	"github.com/backy/backy/pkg/cli"
	"github.com/backy/backy/pkg/repo"
	"github.com/backy/backy/pkg/restore"
)

type restoreCLI struct {
	Version  cli.VersionFlag `help:"Print the version and exit."`
	Base     string          `short:"b" default:"." help:"Repository directory." placeholder:"DIR"`
	Revision string          `short:"r" default:"latest" help:"Revision: latest, a tag, an id or unique id prefix, or N for the N-th newest (0 = newest)." placeholder:"SPEC"`
	Format   string          `short:"f" enum:"raw,extents,rbd-diff" default:"raw" help:"Output format: raw (image bytes), extents (an extent stream for backy-store) or rbd-diff (for rbd import-diff)."`
	Target   string          `arg:"" help:"File or block device to write, or - for stdout."`
}

func (c *restoreCLI) Run(env *cli.Env) error {
	r, err := repo.Open(c.Base)
	if err != nil {
		return err
	}
	lock, err := r.TryLock(repo.LockChunks, true)
	if err != nil {
		return err
	}
	defer lock.Unlock()
	rev, err := r.Find(c.Revision)
	if err != nil {
		return err
	}
	ix, err := r.Index(rev.ID)
	if err != nil {
		return err
	}
	if c.Target != "-" {
		if c.Format != "raw" {
			return c.toStream(env, r, rev, ix, nil)
		}
		return restore.ToPath(env.Ctx, r, rev, ix, c.Target, restore.Options{})
	}
	if err := cli.RefuseTerminal(env.Stdout); err != nil {
		return err
	}
	return c.toStream(env, r, rev, ix, env.Stdout)
}

// toStream writes to out, or to a new file at Target when out is nil.
func (c *restoreCLI) toStream(env *cli.Env, r *repo.Repo, rev *repo.Revision, ix *repo.Index, out *os.File) error {
	if out == nil {
		f, err := os.Create(c.Target)
		if err != nil {
			return err
		}
		defer f.Close()
		out = f
	}
	switch c.Format {
	case "extents":
		return restore.Extents(env.Ctx, r, rev, ix, out, restore.Options{})
	case "rbd-diff":
		return restore.RBDDiff(env.Ctx, r, rev, ix, out, restore.Options{})
	}
	bw := bufio.NewWriterSize(out, 1<<20)
	if err := restore.Raw(env.Ctx, r, rev, ix, bw, restore.Options{}); err != nil {
		return err
	}
	return bw.Flush()
}

func run() int {
	return cli.Run("backy-restore", "Restore a revision of a backy repository.", &restoreCLI{}, os.Args[1:])
}

func main() { os.Exit(run()) }
