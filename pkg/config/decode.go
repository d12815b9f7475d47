package config

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"math"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/backy/backy/pkg/cephconn"
	"github.com/backy/backy/pkg/schedule"
)

// maxPositioned bounds how many problems get a line number; each costs a
// parse of the file, and an operator fixes the first few before the rest.
const maxPositioned = 10

// decoder walks the decoded TOML document and collects every problem
// instead of stopping at the first.
type decoder struct {
	file     string
	doc      string
	root     map[string]any
	md       toml.MetaData
	problems []problem
	// included maps "jobs.NAME" and "schedules.NAME" of an included file
	// to that file, where their problems are reported
	included map[string]*document
}

// document is a parsed configuration file: where a problem's line is
// looked up.
type document struct {
	file string
	doc  string
	root map[string]any
	md   toml.MetaData
}

type problem struct {
	err *Error
	key []string
	// in is the file the key is defined in (nil: the decoder's own)
	in *document
	// foreign: in an included file, positioned already or not at all
	foreign bool
}

func decode(file string, data []byte) (*Config, error) {
	d := &decoder{file: file, doc: string(data)}
	md, err := toml.Decode(d.doc, &d.root)
	if err != nil {
		return nil, List{d.syntaxError(err)}
	}
	d.md = md
	c := d.config()
	if len(d.problems) > 0 {
		return nil, d.list()
	}
	return c, nil
}

func (d *decoder) fail(kind error, key []string, format string, args ...any) {
	p := problem{
		err: &Error{File: d.file, Key: toml.Key(key).String(), Kind: kind, Msg: fmt.Sprintf(format, args...)},
		key: slices.Clone(key),
	}
	if len(key) >= 2 {
		if in := d.included[key[0]+"."+key[1]]; in != nil {
			p.in, p.err.File = in, in.file
		}
	}
	d.problems = append(d.problems, p)
}

// badDirectory says what is wrong with a job's repository directory, given
// those of the jobs before it (dirs: directory -> job), or "": one job per
// directory, none inside another's repository (a second store would find
// the first's "not empty"), none that is base-dir itself or lies in the
// daemon's own StateDir, and none that is or holds the status file (one
// would write a file, the other a repository).
func (d *decoder) badDirectory(c *Config, j Job, dirs map[string]string) string {
	dir := j.Directory
	if strings.HasPrefix(dir, radosPrefix) {
		if other, taken := dirs[dir]; taken {
			return fmt.Sprintf("uses repository %s of job %q", dir, other)
		}
		return ""
	}
	base := c.Global.BaseDir
	switch {
	case dir == base:
		return fmt.Sprintf("uses base-dir %s itself as its directory", dir)
	case dir == filepath.Join(base, StateDir) || within(dir, filepath.Join(base, StateDir)):
		return fmt.Sprintf("uses directory %s in the daemon's own %s", dir, filepath.Join(base, StateDir))
	case dir == c.Global.StatusFile:
		return fmt.Sprintf("uses the status file %s as its directory", dir)
	case within(c.Global.StatusFile, dir):
		return fmt.Sprintf("directory %s holds the status file %s", dir, c.Global.StatusFile)
	}
	for _, other := range slices.Sorted(maps.Keys(dirs)) {
		switch {
		case other == dir:
			return fmt.Sprintf("uses directory %s of job %q", dir, dirs[other])
		case within(dir, other):
			return fmt.Sprintf("directory %s is inside the repository of job %q (%s)", dir, dirs[other], other)
		case within(other, dir):
			return fmt.Sprintf("directory %s holds the repository of job %q (%s)", dir, dirs[other], other)
		}
	}
	return ""
}

// within reports whether path lies below dir (both clean and absolute).
func within(path, dir string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != "." && rel != ".." && !strings.HasPrefix(rel, "../")
}

// list positions the problems and orders them by line; problems beyond
// maxPositioned come last, without a line.
func (d *decoder) list() List {
	l := make(List, len(d.problems))
	for i, p := range d.problems {
		if i < maxPositioned && !p.foreign {
			in := cmp.Or(p.in, &document{doc: d.doc, root: d.root, md: d.md})
			p.err.Line = lineOf(in.doc, in.root, in.md, p.key)
		}
		l[i] = p.err
	}
	slices.SortStableFunc(l, func(a, b *Error) int {
		if (a.Line == 0) != (b.Line == 0) {
			if a.Line == 0 {
				return 1
			}
			return -1
		}
		return a.Line - b.Line
	})
	return l
}

var redefined = regexp.MustCompile(`^Key '(.*)' (has already been defined|was already created)`)

// syntaxError turns the TOML parser's complaint into a problem. Tables
// defined twice are the common case (a job pasted twice), so they get a
// message of their own.
func (d *decoder) syntaxError(err error) *Error {
	e := &Error{File: d.file, Kind: ErrSyntax, Msg: "syntax error: " + err.Error()}
	var pe toml.ParseError
	if !errors.As(err, &pe) {
		return e
	}
	e.Line = pe.Position.Line
	e.Msg = "syntax error: " + strings.TrimSuffix(pe.Message, ".")
	if m := redefined.FindStringSubmatch(pe.Message); m != nil {
		e.Kind, e.Key = ErrDuplicate, m[1]
		switch parts := strings.Split(m[1], "."); {
		case strings.ContainsAny(m[1], `"'`):
			e.Msg = fmt.Sprintf("key %s is defined twice", m[1])
		case len(parts) == 2 && parts[0] == "jobs":
			e.Msg = fmt.Sprintf("job %q is defined twice", parts[1])
		case len(parts) == 2 && parts[0] == "schedules":
			e.Msg = fmt.Sprintf("schedule %q is defined twice", parts[1])
		default:
			e.Msg = fmt.Sprintf("key %q is defined twice", m[1])
		}
	}
	return e
}

func (d *decoder) config() *Config {
	c := &Config{File: d.file, Schedules: map[string]schedule.Schedule{}, Jobs: map[string]Job{}}
	d.only(nil, d.root, topKeys)
	d.include()
	c.Global = d.global(d.table(d.root, nil, "global"))

	schedules := d.table(d.root, nil, "schedules")
	for _, name := range slices.Sorted(maps.Keys(schedules)) {
		if s, ok := d.schedule(name, schedules[name]); ok {
			c.Schedules[name] = s
		}
	}

	jobs := d.table(d.root, nil, "jobs")
	dirs := map[string]string{}
	for _, name := range slices.Sorted(maps.Keys(jobs)) {
		j, ok := d.job(c, schedules, name, jobs[name])
		if !ok {
			continue
		}
		if msg := d.badDirectory(c, j, dirs); msg != "" {
			// Pointed at the key that chose the directory, when one did.
			k := []string{"jobs", name}
			for _, kk := range []string{"directory", "repository"} {
				if m, _ := jobs[name].(map[string]any); m[kk] != nil {
					k = append(k, kk)
				}
			}
			d.fail(ErrDuplicate, k, "job %q %s", name, msg)
			continue
		}
		dirs[j.Directory] = name
		c.Jobs[name] = j
	}
	if c.Global.Fleet != "" {
		for _, name := range c.JobNames() {
			if !strings.HasPrefix(c.Jobs[name].Directory, radosPrefix) {
				d.fail(ErrBadValue, []string{"jobs", name}, "job %q: the jobs of a fleet need RADOS repositories; %s is a directory", name, c.Jobs[name].Directory)
			}
		}
	}
	return c
}

// include merges the schedules and jobs of the files named by the
// top-level key include (a path or a list; relative to the including
// file's directory): the job list a fleet's daemons share, beside each
// daemon's own [global].
func (d *decoder) include() {
	v, ok := d.root["include"]
	if !ok {
		return
	}
	var files []string
	switch x := v.(type) {
	case string:
		files = []string{x}
	case []any:
		for _, e := range x {
			s, ok := e.(string)
			if !ok {
				d.fail(ErrBadValue, []string{"include"}, "key \"include\": a path or a list of paths")
				return
			}
			files = append(files, s)
		}
	default:
		d.fail(ErrBadValue, []string{"include"}, "key \"include\": a path or a list of paths")
		return
	}
	for _, f := range files {
		if !filepath.IsAbs(f) {
			f = filepath.Join(filepath.Dir(d.file), f)
		}
		data, err := os.ReadFile(f)
		if err != nil {
			d.fail(ErrBadValue, []string{"include"}, "key \"include\": %v", err)
			continue
		}
		var m map[string]any
		md, err := toml.Decode(string(data), &m)
		if err != nil {
			sub := &decoder{file: f, doc: string(data)}
			d.problems = append(d.problems, problem{err: sub.syntaxError(err), foreign: true})
			continue
		}
		src := &document{file: f, doc: string(data), root: m, md: md}
		for k, t := range m {
			tm, ok := t.(map[string]any)
			if k != "schedules" && k != "jobs" || !ok {
				d.problems = append(d.problems, problem{err: &Error{File: f, Key: k, Kind: ErrUnknownKey,
					Msg: fmt.Sprintf("key %q: an included file holds only [schedules] and [jobs]", k)}, foreign: true})
				continue
			}
			dst, _ := d.root[k].(map[string]any)
			if dst == nil {
				dst = map[string]any{}
				d.root[k] = dst
			}
			for name, def := range tm {
				if _, dup := dst[name]; dup {
					d.problems = append(d.problems, problem{err: &Error{File: f, Key: k + "." + name, Kind: ErrDuplicate,
						Msg: fmt.Sprintf("%s %q is defined in %s and again here", strings.TrimSuffix(k, "s"), name, d.file)}, foreign: true})
					continue
				}
				dst[name] = def
				if d.included == nil {
					d.included = map[string]*document{}
				}
				d.included[k+"."+name] = src
			}
		}
	}
}

func (d *decoder) global(m map[string]any) Global {
	g := Global{
		BaseDir:          DefaultBaseDir,
		WorkerLimit:      DefaultWorkerLimit,
		StatusInterval:   DefaultStatusInterval,
		ConsoleAddresses: slices.Clone(DefaultConsoleAddresses),
		ConsolePort:      DefaultConsolePort,
		Backoff:          schedule.DefaultBackoff,
	}
	path := []string{"global"}
	d.only(path, m, globalKeys)
	if s, ok := d.absPath(m, path, "base-dir"); ok {
		g.BaseDir = s
	}
	if s, ok := d.str(m, path, "rados-pool"); ok {
		if s == "" || strings.ContainsAny(s, "/ \t") {
			k := key(path, "rados-pool")
			d.fail(ErrBadValue, k, "key %q: %q is not a pool name", toml.Key(k).String(), s)
		} else {
			g.RadosPool = s
		}
	}
	g.Ceph = d.ceph(m, path, cephconn.Options{})
	if n, ok := d.integer(m, path, "worker-limit", 1, 10000); ok {
		g.WorkerLimit = n
	}
	g.StatusFile = filepath.Join(g.BaseDir, "status")
	if s, ok := d.str(m, path, "status-file"); ok {
		g.StatusFile = under(g.BaseDir, s)
	}
	if v, ok := d.duration(m, path, "status-interval", time.Second, 24*time.Hour); ok {
		g.StatusInterval = v
	}
	if a, ok := d.addresses(m, path, "console-addresses"); ok {
		g.ConsoleAddresses = a
	}
	if n, ok := d.integer(m, path, "console-port", 1, 65535); ok {
		g.ConsolePort = n
	}
	g.ConsoleSocket = filepath.Join(g.BaseDir, StateDir, "console.sock")
	// "" turns the socket off: the one key whose empty string means
	// something, so not read with str
	if s, ok := value[string](d, m, path, "console-socket", "a string"); ok {
		g.ConsoleSocket = ""
		if s != "" {
			g.ConsoleSocket = under(g.BaseDir, s)
		}
	}
	if s, ok := d.str(m, path, "metrics-listen"); ok {
		g.MetricsListen = d.listen(path, "metrics-listen", s)
	}
	g.FleetLease = DefaultFleetLease
	if s, ok := d.str(m, path, "fleet"); ok {
		if err := checkName(s); err != nil {
			k := key(path, "fleet")
			d.fail(ErrBadValue, k, "key %q: fleet name %q %v", toml.Key(k).String(), s, err)
		} else {
			g.Fleet = s
		}
	}
	if s, ok := d.str(m, path, "fleet-member"); ok {
		if err := checkName(s); err != nil {
			k := key(path, "fleet-member")
			d.fail(ErrBadValue, k, "key %q: member name %q %v", toml.Key(k).String(), s, err)
		} else {
			g.FleetMember = s
		}
	}
	if v, ok := d.duration(m, path, "fleet-lease", 2*time.Second, time.Hour); ok {
		g.FleetLease = v
	}
	if n, ok := d.integer(m, path, "fleet-run-limit", 0, 100000); ok {
		g.FleetRunLimit = n
	}
	if g.Fleet != "" && g.RadosPool == "" {
		k := key(path, "fleet")
		d.fail(ErrMissingKey, k, "key %q: a fleet needs rados-pool (its leases live in that pool)", toml.Key(k).String())
	}
	if g.Fleet != "" && g.FleetMember == "" {
		host, _ := os.Hostname()
		if checkName(host) == nil {
			g.FleetMember = host
		} else {
			k := key(path, "fleet-member")
			d.fail(ErrMissingKey, k, "key %q: the host name %q is no member name; set one", toml.Key(k).String(), host)
		}
	}
	if v, ok := d.duration(m, path, "backoff-initial", time.Second, schedule.MaxInterval); ok {
		g.Backoff.Initial = v
	}
	if v, ok := d.duration(m, path, "backoff-max", time.Second, schedule.MaxInterval); ok {
		g.Backoff.Max = v
	}
	if g.Backoff.Max < g.Backoff.Initial {
		k := key(path, "backoff-max")
		d.fail(ErrBadValue, k, "key %q: %s is shorter than backoff-initial %s", toml.Key(k).String(),
			schedule.FormatDuration(g.Backoff.Max), schedule.FormatDuration(g.Backoff.Initial))
	}
	return g
}

func (d *decoder) schedule(name string, v any) (schedule.Schedule, bool) {
	path := []string{"schedules", name}
	m, ok := d.asTable(path, v)
	if !ok {
		return schedule.Schedule{}, false
	}
	before := len(d.problems)
	if err := checkName(name); err != nil {
		d.fail(ErrBadValue, path, "schedule name %q %v", name, err)
	}
	if len(m) == 0 {
		d.fail(ErrMissingKey, path, "schedule %q has no tags", name)
	}
	var rules []schedule.Rule
	for _, tag := range slices.Sorted(maps.Keys(m)) {
		tpath := key(path, tag)
		if err := schedule.CheckTag(tag); err != nil {
			d.fail(ErrBadValue, tpath, "key %q: a tag must be a letter followed by up to 63 letters, digits, '.', '_' or '-'", toml.Key(tpath).String())
		}
		tm, ok := d.asTable(tpath, m[tag])
		if !ok {
			continue
		}
		d.only(tpath, tm, ruleKeys)
		interval, iok := d.duration(tm, tpath, "interval", schedule.MinimumInterval(), schedule.MaxInterval)
		keep, kok := d.integer(tm, tpath, "keep", 1, 1000000)
		d.require(tm, tpath, "interval", "keep")
		if iok && kok {
			rules = append(rules, schedule.Rule{Tag: tag, Interval: interval, Keep: keep})
		}
	}
	if len(d.problems) > before {
		return schedule.Schedule{}, false
	}
	s, err := schedule.New(rules...)
	if err != nil {
		// The checks above should have caught whatever New refuses.
		d.fail(ErrBadValue, path, "schedule %q: %v", name, err)
		return schedule.Schedule{}, false
	}
	return s, true
}

func (d *decoder) job(c *Config, schedules map[string]any, name string, v any) (Job, bool) {
	path := []string{"jobs", name}
	m, ok := d.asTable(path, v)
	if !ok {
		return Job{}, false
	}
	before := len(d.problems)
	if err := checkName(name); err != nil {
		d.fail(ErrBadValue, path, "job name %q %v", name, err)
	}
	d.only(path, m, jobKeys)
	d.require(m, path, "schedule", "source")
	j := Job{Name: name, VerifySample: DefaultVerifySample, Directory: filepath.Join(c.Global.BaseDir, name)}
	if s, ok := d.str(m, path, "schedule"); ok {
		j.ScheduleName = s
		if _, defined := schedules[s]; !defined {
			k := key(path, "schedule")
			d.fail(ErrNoSuchSchedule, k, "key %q: no schedule named %q", toml.Key(k).String(), s)
		}
		j.Schedule = c.Schedules[s]
	}
	if sm := d.table(m, path, "source"); sm != nil {
		j.Source = d.source(key(path, "source"), sm)
	}
	if b, ok := value[bool](d, m, path, "full-always", "true or false"); ok {
		j.FullAlways = b
	}
	if f, ok := d.number(m, path, "verify-sample", 0, 100); ok {
		j.VerifySample = f
	}
	if c.Global.RadosPool != "" {
		j.Directory = radosPrefix + c.Global.RadosPool + "/" + name
	}
	if s, ok := d.str(m, path, "directory"); ok {
		j.Directory = under(c.Global.BaseDir, s)
	}
	if s, ok := d.str(m, path, "repository"); ok {
		k := key(path, "repository")
		_, both := m["directory"]
		switch {
		case both:
			d.fail(ErrBadValue, k, "key %q: give directory or repository, not both", toml.Key(k).String())
		case strings.HasPrefix(s, radosPrefix):
			if !validRados(s) {
				d.fail(ErrBadValue, k, "key %q: %q is not a RADOS location rados:POOL/JOB", toml.Key(k).String(), s)
			}
			j.Directory = s
		default:
			j.Directory = under(c.Global.BaseDir, s)
		}
	}
	if cm := d.table(m, path, "consistency"); cm != nil {
		j.Consistency = d.consistency(key(path, "consistency"), cm, j.Source.Type)
	}
	j.Ceph = d.ceph(m, path, c.Global.Ceph)
	return j, len(d.problems) == before
}

// ceph reads ceph-conf (an absolute path) and ceph-user (a Ceph client
// name without "client.") of the table at path over the defaults def.
func (d *decoder) ceph(m map[string]any, path []string, def cephconn.Options) cephconn.Options {
	if s, ok := d.absPath(m, path, "ceph-conf"); ok {
		def.Conf = s
	}
	if s, ok := d.str(m, path, "ceph-user"); ok {
		k := key(path, "ceph-user")
		switch {
		case strings.HasPrefix(s, "client."):
			d.fail(ErrBadValue, k, "key %q: %q: give the name without \"client.\" (%q)", toml.Key(k).String(), s, strings.TrimPrefix(s, "client."))
		case checkName(s) != nil:
			d.fail(ErrBadValue, k, "key %q: %q is not a Ceph client name: letters, digits, '.', '_' or '-'", toml.Key(k).String(), s)
		default:
			def.User = s
		}
	}
	return def
}

func (d *decoder) source(path []string, m map[string]any) Source {
	d.require(m, path, "type")
	typ, ok := d.str(m, path, "type")
	if !ok {
		return Source{}
	}
	src := Source{Type: SourceType(typ)}
	allowed, known := sourceKeys[src.Type]
	if !known {
		k := key(path, "type")
		d.fail(ErrBadValue, k, "key %q: unknown source type %q; want \"file\", \"rbd\" or \"command\"", toml.Key(k).String(), typ)
		return src
	}
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if !slices.Contains(allowed, k) {
			kk := key(path, k)
			if slices.Contains(knownKeys(), "jobs.NAME.source."+k) {
				d.fail(ErrUnknownKey, kk, "key %q does not belong to a %q source", toml.Key(kk).String(), typ)
			} else {
				d.fail(ErrUnknownKey, kk, "unknown key %q", toml.Key(kk).String())
			}
		}
	}
	for _, k := range allowed {
		if k != "type" {
			d.require(m, path, k)
		}
	}
	switch src.Type {
	case SourceFile:
		if s, ok := d.absPath(m, path, "path"); ok {
			src.Path = s
		}
	case SourceRBD:
		src.Pool, _ = d.rbdName(m, path, "pool")
		src.Image, _ = d.rbdName(m, path, "image")
	case SourceCommand:
		src.Command, _ = d.str(m, path, "command")
	}
	return src
}

// consistency reads a job's consistency table; only RBD sources have a
// snapshot for a freeze to cover.
func (d *decoder) consistency(path []string, m map[string]any, typ SourceType) *Consistency {
	d.only(path, m, consistencyKeys)
	if typ != SourceRBD && typ != "" {
		d.fail(ErrBadValue, path, "key %q: a %s source has no snapshot for a freeze to cover: consistency settings need an rbd source",
			toml.Key(path).String(), typ)
		return nil
	}
	c := &Consistency{Fallback: "crash", WarnCrashRuns: DefaultWarnCrashRuns}
	c.FreezeCommand, _ = d.str(m, path, "freeze-command")
	c.ThawCommand, _ = d.str(m, path, "thaw-command")
	c.SnapshotCommand, _ = d.str(m, path, "snapshot-command")
	if s, ok := d.absPath(m, path, "guest-agent"); ok {
		c.GuestAgent = s
	}
	if v, ok := d.duration(m, path, "timeout", time.Second, time.Hour); ok {
		c.Timeout = v
	}
	if s, ok := d.str(m, path, "fallback"); ok {
		if s != "crash" && s != "fail" {
			d.fail(ErrBadValue, key(path, "fallback"), "key %q: %q: want \"crash\" or \"fail\"", toml.Key(key(path, "fallback")).String(), s)
		}
		c.Fallback = s
	}
	if n, ok := d.integer(m, path, "warn-crash-runs", 1, 10000); ok {
		c.WarnCrashRuns = n
	}
	ways := 0
	for _, set := range []bool{c.FreezeCommand != "" || c.ThawCommand != "", c.SnapshotCommand != "", c.GuestAgent != ""} {
		if set {
			ways++
		}
	}
	switch {
	case (c.FreezeCommand == "") != (c.ThawCommand == ""):
		d.fail(ErrMissingKey, path, "key %q: freeze-command and thaw-command go together", toml.Key(path).String())
	case ways == 0:
		d.fail(ErrMissingKey, path, "key %q: set freeze-command and thaw-command, snapshot-command or guest-agent", toml.Key(path).String())
	case ways > 1:
		d.fail(ErrBadValue, path, "key %q: choose one of freeze-command/thaw-command, snapshot-command and guest-agent", toml.Key(path).String())
	}
	return c
}

// rbdName reads a pool or image name. '@' would name a snapshot and '/' a
// namespace, both of which backy manages itself.
func (d *decoder) rbdName(m map[string]any, path []string, k string) (string, bool) {
	s, ok := d.str(m, path, k)
	if ok && strings.ContainsAny(s, "@/ \t\n") {
		kk := key(path, k)
		d.fail(ErrBadValue, kk, "key %q: %q must not contain '@', '/' or spaces", toml.Key(kk).String(), s)
		return "", false
	}
	return s, ok
}

// only reports the keys of m that are not in allowed.
func (d *decoder) only(path []string, m map[string]any, allowed []string) {
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if !slices.Contains(allowed, k) {
			d.fail(ErrUnknownKey, key(path, k), "unknown key %q", toml.Key(key(path, k)).String())
		}
	}
}

// require reports the keys that m lacks.
func (d *decoder) require(m map[string]any, path []string, keys ...string) {
	for _, k := range keys {
		if _, ok := m[k]; !ok {
			d.fail(ErrMissingKey, key(path, k), "missing key %q", toml.Key(key(path, k)).String())
		}
	}
}

// table returns the table under k, nil if there is none or it is not a table.
func (d *decoder) table(m map[string]any, path []string, k string) map[string]any {
	v, ok := m[k]
	if !ok {
		return nil
	}
	t, _ := d.asTable(key(path, k), v)
	return t
}

func (d *decoder) asTable(path []string, v any) (map[string]any, bool) {
	t, ok := v.(map[string]any)
	if !ok {
		d.fail(ErrBadValue, path, "key %q must be a table, not %s", toml.Key(path).String(), typeName(v))
	}
	return t, ok
}

// absPath reads a string key that must be an absolute path, cleaned.
func (d *decoder) absPath(m map[string]any, path []string, k string) (string, bool) {
	s, ok := d.str(m, path, k)
	if ok && !filepath.IsAbs(s) {
		d.fail(ErrBadValue, key(path, k), "key %q: %q is not an absolute path", toml.Key(key(path, k)).String(), s)
		return "", false
	}
	return filepath.Clean(s), ok
}

// value returns key k of m if it is there and a T; a value of another
// type is a problem: the key "must be want".
func value[T any](d *decoder, m map[string]any, path []string, k, want string) (T, bool) {
	v, ok := m[k]
	t, isT := v.(T)
	if ok && !isT {
		d.wrongType(path, k, want, v)
	}
	return t, ok && isT
}

func (d *decoder) str(m map[string]any, path []string, k string) (string, bool) {
	s, ok := value[string](d, m, path, k, "a string")
	if ok && s == "" {
		d.fail(ErrBadValue, key(path, k), "key %q must not be empty", toml.Key(key(path, k)).String())
		return "", false
	}
	return s, ok
}

func (d *decoder) integer(m map[string]any, path []string, k string, lo, hi int) (int, bool) {
	n, ok := value[int64](d, m, path, k, "an integer")
	if !ok {
		return 0, false
	}
	if n < int64(lo) || n > int64(hi) {
		d.fail(ErrBadValue, key(path, k), "key %q must be between %d and %d, not %d", toml.Key(key(path, k)).String(), lo, hi, n)
		return 0, false
	}
	return int(n), true
}

func (d *decoder) number(m map[string]any, path []string, k string, lo, hi float64) (float64, bool) {
	v, ok := m[k]
	if !ok {
		return 0, false
	}
	var f float64
	switch n := v.(type) {
	case int64:
		f = float64(n)
	case float64:
		f = n
	default:
		d.wrongType(path, k, "a number", v)
		return 0, false
	}
	if math.IsNaN(f) || f < lo || f > hi {
		d.fail(ErrBadValue, key(path, k), "key %q must be between %g and %g, not %g", toml.Key(key(path, k)).String(), lo, hi, f)
		return 0, false
	}
	return f, true
}

func (d *decoder) duration(m map[string]any, path []string, k string, lo, hi time.Duration) (time.Duration, bool) {
	s, ok := d.str(m, path, k)
	if !ok {
		return 0, false
	}
	kk := toml.Key(key(path, k)).String()
	v, err := schedule.ParseDuration(s)
	if err != nil {
		d.fail(ErrBadValue, key(path, k), "key %q: %q is not a duration such as \"30m\", \"6h\", \"1d\" or \"1w\"", kk, s)
		return 0, false
	}
	if v < lo || v > hi {
		d.fail(ErrBadValue, key(path, k), "key %q: %s is not between %s and %s", kk,
			schedule.FormatDuration(v), schedule.FormatDuration(lo), schedule.FormatDuration(hi))
		return 0, false
	}
	return v, true
}

func (d *decoder) addresses(m map[string]any, path []string, k string) ([]string, bool) {
	list, ok := value[[]any](d, m, path, k, "a list of IP addresses")
	if !ok {
		return nil, false
	}
	addrs := make([]string, 0, len(list))
	for _, item := range list {
		s, isString := item.(string)
		a, err := netip.ParseAddr(s)
		if !isString || err != nil {
			d.fail(ErrBadValue, key(path, k), "key %q: %v is not an IP address", toml.Key(key(path, k)).String(), tomlValue(item))
			return nil, false
		}
		addrs = append(addrs, a.String())
	}
	return addrs, true
}

// listen checks a listening address: PORT, :PORT (both on 127.0.0.1) or
// IP:PORT ([IPv6]:PORT), and returns it as HOST:PORT.
func (d *decoder) listen(path []string, k, s string) string {
	host, port := "127.0.0.1", s
	if strings.Contains(s, ":") {
		var err error
		if host, port, err = net.SplitHostPort(s); err != nil {
			host = "!"
		}
		host = cmp.Or(host, "127.0.0.1")
	}
	a, aerr := netip.ParseAddr(host)
	n, perr := strconv.Atoi(port)
	if aerr != nil || perr != nil || n < 1 || n > 65535 {
		d.fail(ErrBadValue, key(path, k), "key %q: %q is not PORT, :PORT or IP:PORT (port 1 to 65535)", toml.Key(key(path, k)).String(), s)
		return ""
	}
	return net.JoinHostPort(a.String(), port)
}

func (d *decoder) wrongType(path []string, k, want string, v any) {
	d.fail(ErrBadValue, key(path, k), "key %q must be %s, not %s", toml.Key(key(path, k)).String(), want, typeName(v))
}

// under resolves p relative to base unless it is absolute.
func under(base, p string) string {
	if filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	return filepath.Join(base, p)
}

// checkName accepts names that are safe as one directory name and as a
// command-line argument: letters, digits, '.', '_' and '-', starting with a
// letter or digit (so never "." or ".." and never an option), at most 128
// bytes.
func checkName(name string) error {
	if !namePattern.MatchString(name) {
		return errors.New("must be letters, digits, '.', '_' or '-', start with a letter or digit and be at most 128 bytes long")
	}
	return nil
}

var namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

func key(path []string, k string) []string {
	return append(slices.Clone(path), k)
}

func typeName(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case int64:
		return "an integer"
	case float64:
		return "a float"
	case bool:
		return "a boolean"
	case []any:
		return "an array"
	case []map[string]any:
		return "an array of tables"
	case map[string]any:
		return "a table"
	}
	return "a date or time"
}

func tomlValue(v any) string {
	if s, ok := v.(string); ok {
		return fmt.Sprintf("%q", s)
	}
	return typeName(v)
}

// radosPrefix starts a RADOS repository location, rados:POOL/JOB
// (docs/repository.md, "RADOS"; pkg/repo parses it when it opens one).
const radosPrefix = "rados:"

// validRados accepts rados:POOL/JOB with a job name as checkName wants.
func validRados(s string) bool {
	pool, job, ok := strings.Cut(strings.TrimPrefix(s, radosPrefix), "/")
	return ok && pool != "" && !strings.ContainsAny(pool, " \t") && checkName(job) == nil
}
