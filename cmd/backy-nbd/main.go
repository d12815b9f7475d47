// Command backy-nbd serves every revision of a repository as a read-only NBD
// export (man/backy-nbd.1.md).
package main

import (
	"fmt"
	"log/slog"
	"os"

	"github.com/backy/backy/pkg/cli"
	"github.com/backy/backy/pkg/nbdrepo"
	"github.com/backy/backy/pkg/repo"
)

type nbdCLI struct {
	Version    cli.VersionFlag    `help:"Print the version and exit."`
	Completion cli.CompletionFlag `placeholder:"SHELL" predictor:"shell" help:"Print the shell completion script (bash or zsh) and exit."`
	Base       string             `short:"b" default:"." help:"Repository: a directory, or rados:POOL/JOB." placeholder:"REPO"`
	cli.Ceph
	Host        string `short:"H" default:"127.0.0.1" help:"Address to listen on (NBD has no authentication: keep it on loopback)." placeholder:"ADDR"`
	Port        int    `short:"p" default:"9000" help:"TCP port to listen on (0 = any free port, logged)."`
	Socket      string `help:"Listen on this Unix socket (mode 0600, removed at exit) instead of TCP." placeholder:"PATH"`
	Cow         bool   `help:"Let clients write into a per-connection overlay in $TMPDIR, discarded at disconnect."`
	CacheChunks int    `default:"32" help:"Decompressed 4 MiB chunks kept in memory, shared by all clients." placeholder:"N"`
}

func (c *nbdCLI) Run(env *cli.Env) error {
	if c.Port < 0 || c.Port > 65535 {
		return fmt.Errorf("%w: --port %d is not a TCP port", cli.ErrUsage, c.Port)
	}
	if c.CacheChunks < 1 {
		return nbdrepo.ErrCacheSize // 0 would mean the default to the package
	}
	log := slog.New(slog.NewTextHandler(env.Stderr, nil))
	return nbdrepo.Serve(env.Ctx, nbdrepo.ServeOptions{
		Dir: c.Base, Open: repo.Via(env.Ctx, c.Conn()), Host: c.Host, Port: c.Port, Socket: c.Socket, COW: c.Cow, CacheChunks: c.CacheChunks, Logger: log,
	})
}

func run() int {
	return cli.Run("backy-nbd", "Serve the revisions of a backy repository as network block devices.", &nbdCLI{}, os.Args[1:])
}

func main() { os.Exit(run()) }
