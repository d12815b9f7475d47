// Command backy-nbd serves every revision of a repository as a read-only NBD
// export, and mounts one revision's file systems with FUSE
// (man/backy-nbd.1.md).
package main

import (
	"fmt"
	"log/slog"
	"os"

	"github.com/backy/backy/pkg/cli"
	"github.com/backy/backy/pkg/completion"
	"github.com/backy/backy/pkg/nbdmount"
	"github.com/backy/backy/pkg/nbdrepo"
	"github.com/backy/backy/pkg/repo"
)

type globals struct {
	Base string `short:"b" default:"." help:"Repository: a directory, or rados:POOL/JOB." placeholder:"REPO"`
	cli.Ceph
	CacheChunks *int `help:"Decompressed 4 MiB chunks kept in memory, shared by all clients (default: 32 serving, 16 mounting)." placeholder:"N"`
}

// check returns the cache size asked for, 0 for the command's default.
func (g *globals) check() (int, error) {
	if g.CacheChunks == nil {
		return 0, nil
	}
	if *g.CacheChunks < 1 {
		return 0, nbdrepo.ErrCacheSize // 0 would mean the default to the packages
	}
	return *g.CacheChunks, nil
}

type serveCmd struct {
	Host   string `short:"H" default:"127.0.0.1" help:"Address to listen on (default: ${default}; NBD has no authentication: keep it on loopback)." placeholder:"ADDR"`
	Port   int    `short:"p" default:"9000" help:"TCP port to listen on (0 = any free port, logged)."`
	Socket string `help:"Listen on this Unix socket (mode 0600, removed at exit) instead of TCP." placeholder:"PATH"`
	Cow    bool   `help:"Let clients write into a per-connection overlay in $TMPDIR, discarded at disconnect."`
}

func (c *serveCmd) Run(env *cli.Env, g *globals) error {
	if c.Port < 0 || c.Port > 65535 {
		return fmt.Errorf("%w: --port %d is not a TCP port", cli.ErrUsage, c.Port)
	}
	cache, err := g.check()
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(env.Stderr, nil))
	return nbdrepo.Serve(env.Ctx, nbdrepo.ServeOptions{
		Dir: g.Base, Open: repo.Via(env.Ctx, g.Conn()), Host: c.Host, Port: c.Port, Socket: c.Socket, COW: c.Cow, CacheChunks: cache, Logger: log,
	})
}

type mountCmd struct {
	Revision   string `short:"r" predictor:"revision" default:"latest" help:"Revision to mount: latest, a tag, an id or id prefix, or N (N-th newest)." placeholder:"SPEC"`
	Mountpoint string `arg:"" help:"An empty directory: gets one entry per partition (pN.img, and pN/ for ext2/3/4)." type:"path"`
}

func (c *mountCmd) Run(env *cli.Env, g *globals) error {
	cache, err := g.check()
	if err != nil {
		return err
	}
	return nbdmount.Mount(env.Ctx, nbdmount.Options{
		Repo: g.Base, Open: repo.Via(env.Ctx, g.Conn()), Spec: c.Revision, Mountpoint: c.Mountpoint,
		CacheChunks: cache, Stderr: nbdmount.Prefix(env.Stderr, env.Name+": "), Logger: env.Log,
	})
}

type umountCmd struct {
	Mountpoint string `arg:"" help:"The directory given to backy-nbd mount." type:"path"`
}

func (c *umountCmd) Run(env *cli.Env) error {
	return nbdmount.Unmount(c.Mountpoint, nbdmount.Prefix(env.Stderr, env.Name+": "))
}

type nbdCLI struct {
	globals
	Version    cli.VersionFlag    `help:"Print the version and exit."`
	Completion cli.CompletionFlag `placeholder:"SHELL" predictor:"shell" help:"Print the shell completion script (bash or zsh) and exit."`
	Serve      serveCmd           `cmd:"" default:"withargs" help:"Serve every revision (and each partition as SPEC/pN) over NBD (the default)."`
	Mount      mountCmd           `cmd:"" help:"Show a revision's files under a directory with FUSE, in the foreground until Ctrl-C."`
	Umount     umountCmd          `cmd:"" help:"Stop a backy-nbd mount, or clean up after one that was killed."`
}

func run() int {
	var c nbdCLI
	return cli.Run("backy-nbd", "Serve the revisions of a backy repository as network block devices, or mount their files.", &c, os.Args[1:], &c.globals, completion.Predictors())
}

func main() { os.Exit(run()) }
