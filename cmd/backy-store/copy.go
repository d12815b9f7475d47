package main

import (
	"cmp"
	"fmt"

	"github.com/backy/backy/pkg/cli"
	"github.com/backy/backy/pkg/repo"
	"github.com/backy/backy/pkg/upkeep"
)

type copyCmd struct {
	To         string   `short:"t" required:"" placeholder:"REPO" help:"The target repository: a directory, or rados:POOL/JOB (created when missing)."`
	Specs      []string `arg:"" optional:"" name:"spec" predictor:"revision" help:"The revisions to copy: latest, a tag, an id or unique id prefix, or N for the N-th newest; default every revision."`
	ToCephConf string   `placeholder:"FILE" help:"For a rados: target on another cluster: its Ceph configuration (default: --ceph-conf)."`
	ToCephUser string   `placeholder:"NAME" help:"For a rados: target on another cluster: the Ceph client name (default: --ceph-user)."`
}

func (c *copyCmd) Run(env *cli.Env, g *globals) error {
	src, err := g.open(env)
	if err != nil {
		return err
	}
	defer src.Close()
	ceph := repo.Ceph{Conf: cmp.Or(c.ToCephConf, g.CephConf), User: cmp.Or(c.ToCephUser, g.CephUser)}
	dst, err := repo.OpenOrCreate(c.To, repo.Via(env.Ctx, ceph)...)
	if err != nil {
		return err
	}
	defer dst.Close()
	opt, d := watched(env, g, "")
	res, err := upkeep.Copy(env.Ctx, src, dst, upkeep.CopyOptions{Options: opt, Specs: c.Specs})
	d.Stop()
	if err != nil && (res == nil || len(res.Copied) == 0) {
		_ = dst.DiscardIfEmpty() // a copy that wrote nothing leaves no new repository behind
	}
	if res != nil {
		secs := max(res.Duration.Seconds(), 1e-3)
		env.Log.Info(fmt.Sprintf("copy: %s copied, %d already there, %d not copied; %s moved (%s, %s/s), %d found in the target, in %.2fs",
			count(len(res.Copied), "revision"), len(res.Skipped), len(res.Failed), count(res.Moved, "chunk"), upkeep.HumanBytes(res.Bytes),
			upkeep.HumanBytes(int64(float64(res.Bytes)/secs)), res.Found, secs))
	}
	return err
}

// count is "1 revision", "2 revisions".
func count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
