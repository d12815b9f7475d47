// Command backy-nbd serves every revision of a repository as a read-only NBD
// export (man/backy-nbd.1.md).
package main

import (
	"errors"
	"os"

	"github.com/backy/backy/pkg/cli"
)

type nbdCLI struct {
	Version cli.VersionFlag `help:"Print the version and exit."`
	Base    string          `short:"b" default:"." help:"Repository directory."`
	Host    string          `short:"H" default:"127.0.0.1" help:"Address to listen on."`
	Port    int             `short:"p" default:"9000" help:"Port to listen on."`
	Cow     bool            `help:"Let clients write into a throw-away overlay."`
}

func (c *nbdCLI) Run(env *cli.Env) error {
	return errors.New("not implemented yet")
}

func run() int {
	return cli.Run("backy-nbd", "Serve backup revisions as network block devices.", &nbdCLI{}, os.Args[1:])
}

func main() { os.Exit(run()) }
