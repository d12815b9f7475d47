// Command backy-extract reads a source image and writes an extent stream on
// stdout (docs/extent-stream.md, man/backy-extract.1.md).
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/backy/backy/pkg/cli"
	"github.com/backy/backy/pkg/completion"
	"github.com/backy/backy/pkg/extent"
	"github.com/backy/backy/pkg/fifo"
	"github.com/backy/backy/pkg/logline"
	"github.com/backy/backy/pkg/progress"
	"github.com/backy/backy/pkg/quiesce"
	"github.com/backy/backy/pkg/rbd"
	"github.com/backy/backy/pkg/rbd/librbd"
	"github.com/backy/backy/pkg/repo"
	"github.com/backy/backy/pkg/source"
)

// consistencyFlags are the same for both sources, so that a pipeline a
// person types is refused or honoured just as the daemon's would be.
type consistencyFlags struct {
	FreezeCommand   string        `help:"Shell command that freezes the guest's file systems before the snapshot (BACKY_JOB, BACKY_POOL, BACKY_IMAGE, BACKY_SNAPSHOT in its environment)." placeholder:"CMD" group:"consistency"`
	ThawCommand     string        `help:"Shell command that thaws them after the snapshot; it runs whenever the freeze was attempted, even if backy-extract is killed." placeholder:"CMD" group:"consistency"`
	SnapshotCommand string        `help:"Shell command that asks an agent to make the snapshot $BACKY_SNAPSHOT itself; backy-extract waits for it to appear." placeholder:"CMD" group:"consistency"`
	GuestAgent      string        `help:"Unix socket of the QEMU guest agent: freeze through it, snapshot, thaw." placeholder:"SOCKET" group:"consistency"`
	Timeout         time.Duration `name:"consistency-timeout" help:"Longest freeze (freeze plus snapshot), or longest wait for the agent's snapshot (default 60s for a freeze, 90s for an agent)." placeholder:"DURATION" group:"consistency"`
	Fallback        string        `enum:"crash,fail" default:"crash" help:"When the consistent way fails: take a plain crash-consistent snapshot (crash) or fail." group:"consistency"`
	Job             string        `predictor:"job" help:"Job name, for the commands' environment (BACKY_JOB)." placeholder:"NAME" group:"consistency"`
}

func (f *consistencyFlags) options() quiesce.Options {
	return quiesce.Options{FreezeCommand: f.FreezeCommand, ThawCommand: f.ThawCommand,
		SnapshotCommand: f.SnapshotCommand, GuestAgent: f.GuestAgent, Timeout: f.Timeout, Fallback: f.Fallback}
}

type fileCmd struct {
	Path     string      `arg:"" help:"Image file or block device to read, or - for a raw image on stdin."`
	Size     int64       `help:"Image size in bytes; required when PATH is a pipe."`
	Sample   cli.Percent `help:"Write a sample stream of N% of the 4 MiB blocks (or \"all\") for verify --against." placeholder:"N%"`
	Seed     uint64      `help:"Seed for choosing sampled blocks (default: random)."`
	Snapshot string      `help:"Snapshot name to record in the stream header."`
	BaseFrom string      `help:"Repository (a directory or rados:POOL/JOB) whose newest revision is the base of a differential stream: every chunk is read and hashed, only chunks whose hash differs are sent." placeholder:"REPO"`
	Quiet    bool        `short:"q" help:"Show no progress line on a terminal (the summary line still ends the run)."`
	cli.Ceph
	consistencyFlags
}

// Streams implements cli.Streamer: the stream goes to stdout, the image
// may come on stdin.
func (c *fileCmd) Streams() (stdin, stdout bool) { return c.Path == "-", true }

func (c *fileCmd) Run(env *cli.Env) error {
	if err := cli.RefuseTerminal(env.Stdout); err != nil {
		return err
	}
	if c.Sample > 0 && c.BaseFrom != "" {
		return fmt.Errorf("%w: --sample reads whole blocks: no --base-from", cli.ErrUsage)
	}
	if q := c.options(); q.Method() != "" || c.Timeout != 0 || c.Job != "" {
		return fmt.Errorf("%w: a file source has no snapshot for a freeze to cover: --freeze-command, --thaw-command, --snapshot-command, --guest-agent, --consistency-timeout and --job are for rbd", cli.ErrUsage)
	}
	if c.Size < 0 {
		return fmt.Errorf("%w: --size %d: a size is not negative", cli.ErrUsage, c.Size)
	}
	pc := new(progress.Counter)
	d := progress.Start(env.Stderr, env.Name, pc.Load, progress.Options{Quiet: c.Quiet})
	_, err := source.File(env.Ctx, c.Path, env.Stdout, source.Options{
		Size: c.Size, Sample: float64(c.Sample), Seed: c.Seed, Stdin: env.Stdin, Snapshot: c.Snapshot,
		BaseFrom: c.BaseFrom, Repo: repo.Via(env.Ctx, c.Conn()), Log: logline.New(d, env.Name), Progress: pc})
	// The reader of the stream sees its end now, not after Stop, which
	// may wait for the reader's progress line to go.
	if cerr := env.CloseStdout(); err == nil && cerr != nil {
		err = cerr
	}
	d.Stop()
	return err
}

type dumpCmd struct {
	Stream string `arg:"" optional:"" default:"-" help:"Stream file to print (default: stdin)."`
	JSON   bool   `help:"Print one JSON object per line instead of text."`
}

// Streams implements cli.Streamer: the stream may come on stdin.
func (c *dumpCmd) Streams() (stdin, stdout bool) { return c.Stream == "-", false }

func (c *dumpCmd) Run(env *cli.Env) error {
	in := env.Stdin
	if c.Stream != "-" {
		f, err := fifo.OpenInput(env.Ctx, c.Stream)
		if err != nil {
			return err
		}
		defer f.Close()
		in = f
	}
	return extent.Dump(env.Stdout, in, c.JSON)
}

type rbdCmd struct {
	Image       string      `arg:"" help:"The image, POOL/IMAGE; POOL/IMAGE@SNAP reads that existing snapshot instead of making one." placeholder:"POOL/IMAGE[@SNAP]"`
	BaseFrom    string      `xor:"base" help:"Repository (a directory or rados:POOL/JOB) whose newest revision's snapshot is the base of a differential stream." placeholder:"REPO"`
	FromSnap    string      `xor:"base" help:"Base snapshot of a differential stream, by name." placeholder:"NAME"`
	Full        bool        `help:"Write a full stream whatever the base."`
	WholeObject bool        `help:"Diff whole changed objects, as rbd export-diff --whole-object."`
	Engine      string      `enum:"auto,librbd,cli" default:"auto" help:"How to read Ceph: librbd, cli (the rbd command) or auto (librbd when built in)."`
	ID          string      `help:"Name the new snapshot backy-ID (default: a fresh revision id)." placeholder:"ID"`
	Sample      cli.Percent `help:"Write a sample stream of N% of the 4 MiB blocks of POOL/IMAGE@SNAP (or \"all\") for verify --against." placeholder:"N%"`
	Seed        uint64      `help:"Seed for choosing sampled blocks (default: random)." placeholder:"N"`
	cli.Ceph
	consistencyFlags
}

// Streams implements cli.Streamer: the stream goes to stdout.
func (c *rbdCmd) Streams() (stdin, stdout bool) { return false, true }

func (c *rbdCmd) Run(env *cli.Env) error {
	if err := cli.RefuseTerminal(env.Stdout); err != nil {
		return err
	}
	img, err := rbd.ParseImage(c.Image)
	if err != nil {
		return err
	}
	switch {
	case c.Sample > 0 && img.Snap == "":
		return fmt.Errorf("%w: --sample reads an existing snapshot: give POOL/IMAGE@SNAP", cli.ErrUsage)
	case c.Sample > 0 && (c.BaseFrom != "" || c.FromSnap != "" || c.Full || c.WholeObject):
		return fmt.Errorf("%w: --sample reads whole blocks: no base, --full or --whole-object", cli.ErrUsage)
	case img.Snap != "" && c.ID != "":
		return fmt.Errorf("%w: --id names a new snapshot, but %s names an existing one", cli.ErrUsage, img)
	}
	q := c.options()
	if err := q.Check(); err != nil {
		return fmt.Errorf("%w: %w", cli.ErrUsage, err)
	}
	if img.Snap != "" && q.Method() != "" {
		return fmt.Errorf("%w: %s names an existing snapshot: nothing to freeze for", cli.ErrUsage, img)
	}
	// A write to a closed pipe must fail like any error, so the new
	// snapshot is removed, instead of killing the process on the spot.
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
	eng, err := openEngine(env.Ctx, c.Engine, c.Conn())
	if err != nil {
		return err
	}
	defer eng.Close()
	res, err := rbd.Backup(env.Ctx, eng, env.Stdout, rbd.Options{
		Image: img, BaseFrom: c.BaseFrom, Repo: repo.Via(env.Ctx, c.Conn()), FromSnap: c.FromSnap, Full: c.Full,
		WholeObject: c.WholeObject, ID: c.ID, Sample: float64(c.Sample), Seed: c.Seed, Log: env.Log,
		Quiesce: q, Job: c.Job})
	if res != nil {
		h, s := res.Header, res.Summary
		from := ""
		if h.Base != "" {
			from = " from " + h.Base
		}
		env.Log.Info(fmt.Sprintf("%s stream of %s@%s%s: %d records, %d data bytes (%s engine)%s",
			h.Kind, img.Spec(), h.Snapshot, from, s.Records, s.DataBytes, eng.Name(), consistencyNote(h)))
	}
	return err
}

// consistencyNote is the log's account of the snapshot's consistency.
func consistencyNote(h extent.Header) string {
	if h.Consistency == "" {
		return ""
	}
	n := ", consistency " + h.Consistency
	if h.Frozen > 0 {
		n += fmt.Sprintf(", frozen %s", h.Frozen.Round(time.Millisecond))
	}
	if h.Reason != "" {
		n += " (" + h.Reason + ")"
	}
	return n
}

func openEngine(ctx context.Context, name string, conn rbd.Conn) (rbd.Engine, error) {
	if name == "cli" || name == "auto" && !librbd.Available {
		return rbd.NewCLI(conn), nil
	}
	return librbd.New(ctx, conn)
}

type rbdDiffCmd struct {
	Diff  string `arg:"" help:"File holding an rbd export-diff stream, or - for stdin." placeholder:"FILE"`
	Image string `help:"The image the diff was exported from, recorded as the source rbd:POOL/IMAGE." placeholder:"POOL/IMAGE"`
}

// Streams implements cli.Streamer: the stream goes to stdout, the rbd diff
// may come on stdin.
func (c *rbdDiffCmd) Streams() (stdin, stdout bool) { return c.Diff == "-", true }

func (c *rbdDiffCmd) Run(env *cli.Env) error {
	if err := cli.RefuseTerminal(env.Stdout); err != nil {
		return err
	}
	opt := rbd.ConvertOptions{Source: "rbd-diff:stdin"}
	if c.Image != "" {
		img, err := rbd.ParseImage(c.Image)
		if err != nil {
			return err
		}
		if img.Snap != "" {
			return fmt.Errorf("%w: --image %s: the snapshots come from the diff", cli.ErrUsage, c.Image)
		}
		opt.Source = img.Source()
	}
	in := env.Stdin
	if c.Diff != "-" {
		f, err := fifo.OpenInput(env.Ctx, c.Diff)
		if err != nil {
			return err
		}
		defer f.Close()
		in = f
		if c.Image == "" {
			opt.Source = "rbd-diff:" + c.Diff
		}
	}
	_, err := rbd.Convert(env.Ctx, in, env.Stdout, opt)
	return err
}

type extractCLI struct {
	Version    cli.VersionFlag    `help:"Print the version and exit."`
	Completion cli.CompletionFlag `placeholder:"SHELL" predictor:"shell" help:"Print the shell completion script (bash or zsh) and exit."`
	File       fileCmd            `cmd:"" help:"Write a full, differential (--base-from) or sample stream of an image file or block device."`
	Rbd        rbdCmd             `cmd:"" name:"rbd" help:"Snapshot a Ceph RBD image and write a full or differential stream (or a sample of a snapshot)."`
	RbdDiff    rbdDiffCmd         `cmd:"" name:"rbd-diff" help:"Convert an rbd export-diff stream into an extent stream."`
	Dump       dumpCmd            `cmd:"" help:"Print an extent stream's header and records as text or JSON."`
}

func run() int {
	if os.Getenv(quiesce.HelperEnv) != "" {
		return quiesce.HelperMain() // the freeze/thaw helper (package quiesce)
	}
	return cli.Run("backy-extract", "Read a source image and write a backy extent stream on stdout.", &extractCLI{}, os.Args[1:], completion.Predictors())
}

func main() { os.Exit(run()) }
