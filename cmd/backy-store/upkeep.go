package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/backy/backy/pkg/cli"
	"github.com/backy/backy/pkg/fifo"
	"github.com/backy/backy/pkg/logline"
	"github.com/backy/backy/pkg/progress"
	"github.com/backy/backy/pkg/repo"
	"github.com/backy/backy/pkg/schedule"
	"github.com/backy/backy/pkg/upkeep"
)

// The upkeep subcommands: flag structs and the lines they print. The work
// is done in pkg/upkeep.

func options(env *cli.Env) upkeep.Options { return upkeep.Options{Log: env.Log} }

// watched is options for a long run: a progress line on a terminal, with
// the report lines written above it. Stop the Display before the summary.
func watched(env *cli.Env, g *globals, items string) (upkeep.Options, *progress.Display) {
	pc := new(progress.Counter)
	d := show(env, g, pc.Load, items)
	return upkeep.Options{Progress: pc, Log: logline.New(d, env.Name)}, d
}

type verifyCmd struct {
	Revision string        `short:"r" predictor:"revision" placeholder:"SPEC" xor:"r-all" help:"Verify one revision: latest, a tag, an id or unique id prefix, or N for the N-th newest (0 = newest)."`
	All      bool          `xor:"r-all,all-against" help:"Verify every revision (the default without -r)."`
	Sample   cli.Percent   `placeholder:"N%" xor:"sample-against" help:"Check only N% of the distinct chunks, at random; damage found counts, a clean sample marks nothing verified."`
	Against  string        `placeholder:"FILE" xor:"sample-against,all-against" help:"Compare the revision (-r, default latest) with the extent stream in FILE (- for stdin), e.g. from backy-extract file --sample."`
	Timeout  time.Duration `placeholder:"DURATION" help:"With --against: fail (never pass) when the comparison takes longer, e.g. 10m."`
}

// Streams implements cli.Streamer: verify --against - reads stdin.
func (c *verifyCmd) Streams() (stdin, stdout bool) { return c.Against == "-", false }

func (c *verifyCmd) Run(env *cli.Env, g *globals) error {
	if c.Timeout != 0 && c.Against == "" {
		return fmt.Errorf("%w: --timeout goes with --against", cli.ErrUsage)
	}
	if c.Timeout < 0 {
		return fmt.Errorf("%w: --timeout must be positive", cli.ErrUsage)
	}
	r, err := g.open(env)
	if err != nil {
		return err
	}
	defer r.Close() // librados: its connection (and admin socket) ends with the command
	if c.Against != "" {
		return c.against(env, r)
	}
	sel := upkeep.Selection{Spec: c.Revision, All: c.All || c.Revision == ""}
	opt, d := watched(env, g, "")
	res, err := upkeep.Verify(env.Ctx, r, upkeep.VerifyOptions{Options: opt, Selection: sel, Sample: float64(c.Sample)})
	d.Stop()
	if res != nil {
		what := "checked"
		if c.Sample > 0 && c.Sample < 100 {
			what = fmt.Sprintf("sampled %g%%:", float64(c.Sample))
		}
		secs := max(res.Duration.Seconds(), 1e-3)
		env.Log.Info(fmt.Sprintf("%s %d chunks (%s) of %d revisions in %.2fs, %s/s: %d verified, %d distrusted",
			what, res.Chunks, upkeep.HumanBytes(int64(res.Chunks)*repo.ChunkSize), len(res.Revisions),
			secs, upkeep.HumanBytes(int64(float64(res.Chunks)*repo.ChunkSize/secs)), len(res.Verified), len(res.Distrusted)))
	}
	return err
}

func (c *verifyCmd) against(env *cli.Env, r *repo.Repo) error {
	in := env.Stdin
	if c.Against == "-" {
		if cli.IsTerminal(in) {
			return fmt.Errorf("%w: stdin is a terminal; pipe a stream in (backy-extract file IMAGE --sample 5%% | backy-store verify --against -)", cli.ErrUsage)
		}
	} else {
		f, err := fifo.OpenInput(env.Ctx, c.Against)
		if err != nil {
			return err
		}
		defer f.Close()
		in = f
	}
	res, err := upkeep.VerifyAgainst(env.Ctx, r, in, upkeep.AgainstOptions{Options: options(env), Spec: c.Revision, Timeout: c.Timeout})
	if err != nil {
		return err
	}
	state := "verified"
	if !res.Verified {
		state = "still distrusted"
	}
	env.Log.Info(fmt.Sprintf("revision %s matches the stream: %d records, %s compared; %s",
		res.Revision, res.Records, upkeep.HumanBytes(res.Bytes), state))
	return nil
}

type distrustCmd struct {
	Revision string `short:"r" predictor:"revision" placeholder:"SPEC" xor:"r-from,r-until,r-all" help:"Distrust one revision: latest, a tag, an id or unique id prefix, or N for the N-th newest (0 = newest)."`
	From     string `placeholder:"DATE" xor:"r-from,from-all" help:"Distrust revisions taken at or after DATE (YYYY-MM-DD or RFC 3339)."`
	Until    string `placeholder:"DATE" xor:"r-until,until-all" help:"Distrust revisions taken up to DATE (YYYY-MM-DD takes in the whole day, or RFC 3339)."`
	All      bool   `xor:"r-all,from-all,until-all" help:"Distrust every revision."`
}

func (c *distrustCmd) Run(env *cli.Env, g *globals) error {
	if c.Revision == "" && c.From == "" && c.Until == "" && !c.All {
		return fmt.Errorf("%w: say which revisions: -r SPEC, --from/--until DATE or --all", cli.ErrUsage)
	}
	r, err := g.open(env)
	if err != nil {
		return err
	}
	defer r.Close() // librados: its connection (and admin socket) ends with the command
	changed, err := upkeep.Distrust(r, upkeep.Selection{Spec: c.Revision, From: c.From, Until: c.Until, All: c.All})
	for _, rev := range changed {
		env.Log.Info(fmt.Sprintf("revision %s (%s): distrusted", rev.ID, rev.Time.Local().Format(time.DateTime)))
	}
	if err == nil {
		env.Log.Info(fmt.Sprintf("%d revisions newly distrusted", len(changed)))
	}
	return err
}

type tagsCmd struct {
	Revision string   `short:"r" predictor:"revision" placeholder:"SPEC" default:"latest" help:"The revision: latest, a tag, an id or unique id prefix, or N for the N-th newest (0 = newest)."`
	Action   string   `arg:"" enum:"add,remove,set" help:"add, remove or set (replace all tags with TAG...)."`
	Tags     []string `arg:"" name:"tag" help:"Tags: a letter, then letters, digits, '.', '_' or '-'."`
}

func (c *tagsCmd) Run(env *cli.Env, g *globals) error {
	r, err := g.open(env)
	if err != nil {
		return err
	}
	defer r.Close() // librados: its connection (and admin socket) ends with the command
	res, err := upkeep.Tags(r, c.Revision, c.Action, c.Tags)
	if err != nil {
		return err
	}
	if res.Removed {
		env.Log.Info(fmt.Sprintf("revision %s lost its last tag and was removed", res.Revision.ID))
		return nil
	}
	env.Log.Info(fmt.Sprintf("revision %s: tags %s", res.Revision.ID, tagText(res.Revision.Tags)))
	return nil
}

func tagText(tags []string) string {
	if len(tags) == 0 {
		return "(none)"
	}
	return strings.Join(tags, ",")
}

type forgetCmd struct {
	Revision string `short:"r" predictor:"revision" placeholder:"SPEC" help:"The revision to remove: latest, a tag, an id or unique id prefix, or N for the N-th newest (0 = newest)."`
	Spec     string `arg:"" optional:"" name:"spec" predictor:"revision" help:"The revision, as an alternative to -r."`
	Force    bool   `help:"Allow removing the newest revision (the base of the next differential backup)."`
}

func (c *forgetCmd) Run(env *cli.Env, g *globals) error {
	spec := c.Revision
	switch {
	case c.Revision != "" && c.Spec != "":
		return fmt.Errorf("%w: give the revision once, with -r or as an argument", cli.ErrUsage)
	case spec == "":
		spec = c.Spec
	}
	if spec == "" {
		return fmt.Errorf("%w: forget needs a revision (-r SPEC); it has no default", cli.ErrUsage)
	}
	r, err := g.open(env)
	if err != nil {
		return err
	}
	defer r.Close() // librados: its connection (and admin socket) ends with the command
	rev, err := upkeep.Forget(r, spec, c.Force)
	if err != nil {
		return err
	}
	when := "damaged"
	if !rev.Time.IsZero() {
		when = rev.Time.Local().Format(time.DateTime)
	}
	env.Log.Info(fmt.Sprintf("revision %s (%s) removed; run purge to free its chunks", rev.ID, when))
	return nil
}

type expireCmd struct {
	Schedule string `placeholder:"RULES" xor:"schedule" help:"Retention per tag: TAG=INTERVAL:KEEP,..., e.g. daily=1d:9,weekly=7d:5."`
	Config   string `placeholder:"FILE" xor:"schedule" help:"Take the schedule from this backy configuration file (e.g. /etc/backy.conf)."`
	Job      string `predictor:"job" placeholder:"NAME" help:"With --config: the job whose schedule applies (default: the job whose repository is -b)."`
	DryRun   bool   `short:"n" help:"Only print what would change."`
}

func (c *expireCmd) Run(env *cli.Env, g *globals) error {
	var s schedule.Schedule
	var err error
	switch {
	case c.Schedule != "":
		s, err = upkeep.ParseSchedule(c.Schedule)
	case c.Config != "":
		s, err = upkeep.ScheduleFromConfig(c.Config, c.Job, g.Base)
	default:
		return fmt.Errorf("%w: expire needs --schedule RULES or --config FILE", cli.ErrUsage)
	}
	if err != nil {
		return err
	}
	if c.Job != "" && c.Config == "" {
		return fmt.Errorf("%w: --job goes with --config", cli.ErrUsage)
	}
	r, err := g.open(env)
	if err != nil {
		return err
	}
	defer r.Close() // librados: its connection (and admin socket) ends with the command
	changes, err := upkeep.Expire(r, s, c.DryRun, options(env))
	if err != nil {
		return err
	}
	removed := 0
	for _, ch := range changes {
		if ch.Remove {
			removed++
		}
	}
	verb := "removed"
	if c.DryRun {
		verb = "would remove"
	}
	env.Log.Info(fmt.Sprintf("expire: %s %d revisions, untagged %d", verb, removed, len(changes)-removed))
	return nil
}

type purgeCmd struct {
	Wait        time.Duration `placeholder:"DURATION" help:"Wait up to DURATION for a running store, restore or verify to finish instead of failing at once (exit 5)."`
	DryRun      bool          `short:"n" help:"Only count what would be removed."`
	MinInterval time.Duration `placeholder:"DURATION" help:"RADOS: skip the sweep of the pool if the last one began less than DURATION ago."`
}

func (c *purgeCmd) Run(env *cli.Env, g *globals) error {
	if c.Wait < 0 {
		return fmt.Errorf("%w: --wait must be positive", cli.ErrUsage)
	}
	r, err := g.open(env)
	if err != nil {
		return err
	}
	defer r.Close() // librados: its connection (and admin socket) ends with the command
	opt, d := watched(env, g, "chunks")
	res, err := upkeep.Purge(env.Ctx, r, upkeep.PurgeOptions{Options: opt, Wait: c.Wait, DryRun: c.DryRun, MinInterval: c.MinInterval})
	d.Stop()
	if err != nil {
		return err
	}
	verb := "removed"
	if c.DryRun {
		verb = "would remove"
	}
	if res.Pool {
		if res.Skipped {
			env.Log.Info(fmt.Sprintf("purge: skipped, the pool was swept less than %s ago (its last sweep began %s)", c.MinInterval, res.LastSweep.Local().Format(time.DateTime)))
			return nil
		}
		if len(res.Relisted) > 0 {
			env.Log.Warn(fmt.Sprintf("purge: jobs in the pool but missing from its list (was its %s object lost?), marked and listed again: %s",
				"backy-repository", strings.Join(res.Relisted, ", ")))
		}
		env.Log.Info(fmt.Sprintf("purge: pool of %d jobs, %d stores running: %s %d of %d chunks (%d in use by %d revisions, %d unused but too young), %d leftover indexes, in %.2fs",
			res.Jobs, res.Writers, verb, res.Removed, res.Chunks, res.Referenced, res.Revisions, res.Young, res.Indexes, res.Duration.Seconds()))
		return nil
	}
	env.Log.Info(fmt.Sprintf("purge: %s %d of %d chunks (%d in use by %d revisions), %d tmp entries, %d index files without metadata, in %.2fs",
		verb, res.Removed, res.Chunks, res.Referenced, res.Revisions, res.Tmp, res.Indexes, res.Duration.Seconds()))
	if res.Missing > 0 {
		env.Log.Warn(fmt.Sprintf("%d chunks that revisions use are not stored; run backy-store verify", res.Missing))
	}
	return nil
}
