// Command backy-extract reads a source image and writes an extent stream on
// stdout (docs/extent-stream.md, man/backy-extract.1.md).
package main

import (
	"os"

	"github.com/backy/backy/pkg/cli"
	"github.com/backy/backy/pkg/extent"
	"github.com/backy/backy/pkg/source"
)

type fileCmd struct {
	Path     string      `arg:"" help:"Image file or block device to read, or - for a raw image on stdin."`
	Size     int64       `help:"Image size in bytes; required when PATH is a pipe."`
	Sample   cli.Percent `help:"Write a sample stream of N% of the 4 MiB blocks (or \"all\") for verify --against." placeholder:"N%"`
	Seed     uint64      `help:"Seed for choosing sampled blocks (default: random)."`
	Snapshot string      `help:"Snapshot name to record in the stream header."`
}

func (c *fileCmd) Run(env *cli.Env) error {
	if err := cli.RefuseTerminal(env.Stdout); err != nil {
		return err
	}
	_, err := source.File(env.Ctx, c.Path, env.Stdout, source.Options{
		Size: c.Size, Sample: float64(c.Sample), Seed: c.Seed, Stdin: env.Stdin, Snapshot: c.Snapshot})
	return err
}

type dumpCmd struct {
	Stream string `arg:"" optional:"" default:"-" help:"Stream file to print (default: stdin)."`
	JSON   bool   `help:"Print one JSON object per line instead of text."`
}

func (c *dumpCmd) Run(env *cli.Env) error {
	in := env.Stdin
	if c.Stream != "-" {
		f, err := os.Open(c.Stream)
		if err != nil {
			return err
		}
		defer f.Close()
		in = f
	}
	return extent.Dump(env.Stdout, in, c.JSON)
}

type extractCLI struct {
	Version cli.VersionFlag `help:"Print the version and exit."`
	File    fileCmd         `cmd:"" help:"Write a full (or sample) stream of an image file or block device."`
	Dump    dumpCmd         `cmd:"" help:"Print an extent stream's header and records as text or JSON."`
}

func run() int {
	return cli.Run("backy-extract", "Read a source image and write a backy extent stream on stdout.", &extractCLI{}, os.Args[1:])
}

func main() { os.Exit(run()) }

