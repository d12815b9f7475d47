// Command backy-restore gives a revision back as a raw image, an extent
// stream or an rbd diff (man/backy-restore.1.md).
package main

import (
	"bufio"
	"fmt"
	"io"
	"os"

	"github.com/backy/backy/pkg/cli"
	"github.com/backy/backy/pkg/completion"
	"github.com/backy/backy/pkg/fsperm"
	"github.com/backy/backy/pkg/progress"
	"github.com/backy/backy/pkg/repo"
	"github.com/backy/backy/pkg/restore"
	"github.com/backy/backy/pkg/upkeep"
)

type restoreCLI struct {
	Version    cli.VersionFlag    `help:"Print the version and exit."`
	Completion cli.CompletionFlag `placeholder:"SHELL" predictor:"shell" help:"Print the shell completion script (bash or zsh) and exit."`
	Base       string             `short:"b" default:"." help:"Repository: a directory, or rados:POOL/JOB." placeholder:"REPO"`
	Revision   string             `short:"r" predictor:"revision" default:"latest" help:"Revision: latest, a tag, an id or unique id prefix, or N for the N-th newest (0 = newest)." placeholder:"SPEC"`
	Format     string             `short:"f" enum:"raw,extents,rbd-diff" default:"raw" help:"Output format: raw (image bytes), extents (an extent stream for backy-store) or rbd-diff (for rbd import-diff)."`
	Quiet      bool               `short:"q" help:"Show no progress line on a terminal (the summary line still ends the run)."`
	Target     string             `arg:"" help:"File or block device to write, or - for stdout."`
	cli.Ceph
}

// Streams implements cli.Streamer: a restore to - streams to stdout.
func (c *restoreCLI) Streams() (stdin, stdout bool) { return false, c.Target == "-" }

func (c *restoreCLI) Run(env *cli.Env) error {
	r, err := repo.Open(c.Base, repo.Via(env.Ctx, c.Conn())...)
	if err != nil {
		return err
	}
	defer r.Close() // librados: its connection (and admin socket) ends with the command
	lock, err := r.TryLock(repo.LockChunks, true)
	if err != nil {
		return err
	}
	defer lock.Unlock()
	rev, err := r.Find(c.Revision)
	if err != nil {
		return err
	}
	ix, err := r.IndexOf(rev)
	if err != nil {
		return err
	}
	if c.Target == "-" {
		if err := cli.RefuseTerminal(env.Stdout); err != nil {
			return err
		}
	}
	pc := new(progress.Counter)
	data := restore.DataBytes(ix)
	pc.SetTotal(data)
	d := progress.Start(env.Stderr, env.Name, pc.Load, progress.Options{Quiet: c.Quiet})
	opt := restore.Options{Progress: pc}
	var written int64
	switch {
	case c.Target != "-" && c.Format == "raw":
		err = restore.ToPath(env.Ctx, r, rev, ix, c.Target, opt)
		written = data
	case c.Target != "-":
		// like raw's: beside a file and renamed over it when complete
		err = restore.StreamToPath(c.Target, func(w io.Writer) (werr error) {
			written, werr = c.toStream(env, r, rev, ix, w, opt)
			return werr
		})
	default:
		written, err = c.toStream(env, r, rev, ix, env.Stdout, opt)
		// The reader sees the end now, not after Stop (which may wait
		// for the reader's own progress line to go).
		if cerr := env.CloseStdout(); err == nil && cerr != nil {
			err = cerr
		}
	}
	took := d.Stop()
	if err != nil {
		return err
	}
	to, rest := c.Target, "holes"
	switch {
	case to == "-":
		to, rest = "stdout", "zeros"
	case c.Format == "raw" && isDevice(to):
		rest = "zeroed"
	}
	secs := max(took.Seconds(), 1e-3)
	env.Log.Info(fmt.Sprintf("revision %s to %s (%s): %s image, %s written, %s %s, %.2fs, %s/s",
		rev.ID, to, c.Format, upkeep.HumanBytes(ix.Size), upkeep.HumanBytes(written),
		upkeep.HumanBytes(ix.Size-data), rest, secs, upkeep.HumanBytes(int64(float64(ix.Size)/secs))))
	return nil
}

func isDevice(path string) bool {
	st, err := os.Stat(path)
	return err == nil && fsperm.IsBlockDevice(st.Mode())
}

// toStream writes the revision in c.Format to out and returns the bytes
// written.
func (c *restoreCLI) toStream(env *cli.Env, r *repo.Repo, rev *repo.Revision, ix *repo.Index, out io.Writer, opt restore.Options) (int64, error) {
	cw := &countingWriter{w: out}
	var err error
	switch c.Format {
	case "extents":
		err = restore.Extents(env.Ctx, r, rev, ix, cw, opt)
	case "rbd-diff":
		err = restore.RBDDiff(env.Ctx, r, rev, ix, cw, opt)
	default:
		bw := bufio.NewWriterSize(cw, 1<<20)
		if err = restore.Raw(env.Ctx, r, rev, ix, bw, opt); err == nil {
			err = bw.Flush()
		}
	}
	return cw.n, err
}

// countingWriter counts the bytes that reach w.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func run() int {
	return cli.Run("backy-restore", "Restore a revision of a backy repository.", &restoreCLI{}, os.Args[1:], completion.Predictors())
}

func main() { os.Exit(run()) }
