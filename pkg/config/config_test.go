package config

import (
	"bufio"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/backy/backy/pkg/schedule"
)

var kinds = map[string]error{
	"syntax":           ErrSyntax,
	"unknown-key":      ErrUnknownKey,
	"missing-key":      ErrMissingKey,
	"bad-value":        ErrBadValue,
	"duplicate":        ErrDuplicate,
	"no-such-schedule": ErrNoSuchSchedule,
}

// TestBadConfigs loads every file under testdata/bad. Each starts with
// "# want: MESSAGE" (FILE standing for its path) and "# kind: KIND".
func TestBadConfigs(t *testing.T) {
	files, _ := filepath.Glob("testdata/bad/*.toml")
	if len(files) == 0 {
		t.Fatal("no test files")
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			want, kind := expectation(t, file)
			c, err := Load(file)
			if err == nil {
				t.Fatalf("Load() accepted it: %+v", c)
			}
			if got := err.Error(); got != "config: "+strings.ReplaceAll(want, "FILE", file) {
				t.Errorf("error\n got: %s\nwant: config: %s", got, strings.ReplaceAll(want, "FILE", file))
			}
			if !errors.Is(err, ErrInvalid) || !errors.Is(err, kinds[kind]) {
				t.Errorf("error %v is not ErrInvalid and %s", err, kind)
			}
			var e *Error
			if !errors.As(err, &e) || e.Line == 0 || e.File != file {
				t.Errorf("errors.As(*Error) = %+v", e)
			}
		})
	}
}

func expectation(t *testing.T, file string) (want, kind string) {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if w, ok := strings.CutPrefix(s.Text(), "# want: "); ok {
			want = w
		}
		if k, ok := strings.CutPrefix(s.Text(), "# kind: "); ok {
			kind = k
		}
	}
	if want == "" || kinds[kind] == nil {
		t.Fatalf("%s lacks a '# want:' or a known '# kind:' line", file)
	}
	return want, kind
}

func TestManyProblemsAreAllListed(t *testing.T) {
	_, err := Load("testdata/bad/many-problems.toml")
	var l List
	if !errors.As(err, &l) {
		t.Fatalf("error %T is not a List", err)
	}
	var got []string
	for _, e := range l {
		got = append(got, e.Key)
	}
	want := []string{"global.worker-limit", "schedules.default.daily.keep", "jobs.vm1.schedule", "jobs.vm1.source.image"}
	if !slices.Equal(got, want) {
		t.Errorf("problems at %v, want %v", got, want)
	}
	for i := 1; i < len(l); i++ {
		if l[i].Line < l[i-1].Line {
			t.Errorf("problems out of line order: %v", l)
		}
	}
}

func TestExample(t *testing.T) {
	c, err := Load("testdata/good/example.toml")
	if err != nil {
		t.Fatal(err)
	}
	g := c.Global
	if g.BaseDir != "/srv/backy" || g.WorkerLimit != 4 || g.StatusFile != "/run/backy/status" ||
		g.StatusInterval != time.Minute || !slices.Equal(g.ConsoleAddresses, []string{"127.0.0.1", "::1"}) ||
		g.ConsolePort != 6023 || g.Backoff != schedule.DefaultBackoff {
		t.Errorf("Global = %+v", g)
	}
	if got := c.JobNames(); !slices.Equal(got, []string{"db1", "legacy-host.example.com", "vm1"}) {
		t.Errorf("JobNames() = %v", got)
	}
	if got := len(c.Schedules); got != 2 {
		t.Errorf("%d schedules", got)
	}
	if r, ok := c.Schedules["frequent"].Rule("hourly"); !ok || r.Interval != time.Hour || r.Keep != 25 {
		t.Errorf("frequent.hourly = %v, %v", r, ok)
	}
	for name, want := range map[string]Job{
		"vm1": {Name: "vm1", ScheduleName: "default", VerifySample: DefaultVerifySample, Directory: "/srv/backy/vm1",
			Source: Source{Type: SourceRBD, Pool: "rbd.ssd", Image: "vm1.root"}},
		"db1": {Name: "db1", ScheduleName: "frequent", FullAlways: true, VerifySample: 2.5, Directory: "/srv/backy/databases/db1",
			Source: Source{Type: SourceFile, Path: "/dev/vg0/db1"}},
		"legacy-host.example.com": {Name: "legacy-host.example.com", ScheduleName: "default", Directory: "/backup/legacy",
			Source: Source{Type: SourceCommand, Command: "ssh legacy-host backy-extract --file /dev/sda"}},
	} {
		got := c.Jobs[name]
		if got.Schedule.Len() != c.Schedules[want.ScheduleName].Len() {
			t.Errorf("job %s has schedule %v", name, got.Schedule.Rules())
		}
		got.Schedule = schedule.Schedule{}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("job %s =\n%+v, want\n%+v", name, got, want)
		}
	}
}

func TestDefaults(t *testing.T) {
	c, err := Load("testdata/good/minimal.toml")
	if err != nil {
		t.Fatal(err)
	}
	want := Global{
		BaseDir: DefaultBaseDir, WorkerLimit: DefaultWorkerLimit, StatusFile: "/srv/backy/status",
		StatusInterval: DefaultStatusInterval, ConsoleAddresses: []string{"127.0.0.1"},
		ConsolePort: DefaultConsolePort, ConsoleSocket: "/srv/backy/.backy-schedule/console.sock", Backoff: schedule.DefaultBackoff,
		FleetLease: DefaultFleetLease,
	}
	if g := c.Global; !globalEqual(g, want) {
		t.Errorf("Global = %+v, want %+v", g, want)
	}
	if j := c.Jobs["vm1"]; j.Directory != "/srv/backy/vm1" || j.VerifySample != 1 || j.FullAlways {
		t.Errorf("job vm1 = %+v", j)
	}
}

func TestGoodConfigs(t *testing.T) {
	files, _ := filepath.Glob("testdata/good/*.toml")
	for _, file := range files {
		if _, err := Load(file); err != nil {
			t.Errorf("Load(%s): %v", file, err)
		}
	}
	c, err := Load("testdata/good/no-console.toml")
	if err != nil {
		t.Fatal(err)
	}
	if g := c.Global; len(g.ConsoleAddresses) != 0 || g.BaseDir != "/backup" || g.StatusFile != "/backup/state/status" {
		t.Errorf("Global = %+v", g)
	}
	if r, _ := c.Schedules["short"].Rule("twice-weekly"); r.Interval != 84*time.Hour {
		t.Errorf("twice-weekly = %v", r)
	}
	c, err = Load("testdata/good/rados.toml")
	if err != nil {
		t.Fatal(err)
	}
	for job, want := range map[string]string{"vm1": "rados:backy/vm1", "vm2": "rados:other/vm2", "vm3": DefaultBaseDir + "/vm3"} {
		if got := c.Jobs[job].Directory; got != want {
			t.Errorf("job %s: repository %s, want %s", job, got, want)
		}
	}
	c, err = Load("testdata/good/empty.toml")
	if err != nil || len(c.Jobs) != 0 || c.Global.BaseDir != DefaultBaseDir {
		t.Errorf("empty file: %+v, %v", c, err)
	}
}

func globalEqual(a, b Global) bool { return reflect.DeepEqual(a, b) }

// metrics-listen: off unless given, on loopback unless an address is given.
func TestMetricsListen(t *testing.T) {
	for in, want := range map[string]string{
		"":               "",
		`"9467"`:         "127.0.0.1:9467",
		`":9467"`:        "127.0.0.1:9467",
		`"0.0.0.0:9467"`: "0.0.0.0:9467",
		`"[::1]:9467"`:   "[::1]:9467",
		`"192.0.2.7:80"`: "192.0.2.7:80",
	} {
		text := "[global]\n"
		if in != "" {
			text += "metrics-listen = " + in + "\n"
		}
		c, err := Parse("test.toml", []byte(text))
		if err != nil {
			t.Errorf("%s: %v", in, err)
			continue
		}
		if c.Global.MetricsListen != want {
			t.Errorf("metrics-listen = %s: %q, want %q", in, c.Global.MetricsListen, want)
		}
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load("testdata/no-such-file.toml")
	if !errors.Is(err, os.ErrNotExist) || errors.Is(err, ErrInvalid) {
		t.Errorf("Load(missing) = %v", err)
	}
	if !strings.HasPrefix(err.Error(), "config: ") {
		t.Errorf("error %q lacks the package prefix", err)
	}
}

func TestParseWithoutName(t *testing.T) {
	_, err := Parse("", []byte("[global]\nworkers = 1\n"))
	if err == nil || err.Error() != `config: <input>:2: unknown key "global.workers"` {
		t.Errorf("Parse() = %v", err)
	}
}

func TestLineOfQuotedAndImplicitKeys(t *testing.T) {
	doc := "jobs2.x.y = 1\n" +
		"[schedules.default]\ndaily = { interval = \"1d\", keep = 9 }\n\n" +
		"[jobs.\"a b\"]\nschedule = \"default\"\n"
	_, err := Parse("t", []byte(doc))
	var l List
	if !errors.As(err, &l) || len(l) != 3 {
		t.Fatalf("Parse() = %v", err)
	}
	// jobs2 is only implied by the dotted key on line 1; "a b" is not a
	// safe job name and lacks a source (line 5, its table).
	for i, want := range []struct {
		line int
		key  string
	}{{1, "jobs2"}, {5, `jobs."a b"`}, {5, `jobs."a b".source`}} {
		if l[i].Line != want.line || l[i].Key != want.key {
			t.Errorf("problem %d at %d %s, want %d %s", i, l[i].Line, l[i].Key, want.line, want.key)
		}
	}
}

func TestConsistency(t *testing.T) {
	c, err := Parse("", []byte(`
[schedules.s]
daily = { interval = "1d", keep = 3 }
[jobs.a]
schedule = "s"
source = { type = "rbd", pool = "p", image = "a" }
consistency = { freeze-command = "f", thaw-command = "t", timeout = "20s" }
[jobs.b]
schedule = "s"
source = { type = "rbd", pool = "p", image = "b" }
consistency = { snapshot-command = "snap", fallback = "fail", warn-crash-runs = 5 }
[jobs.c]
schedule = "s"
source = { type = "rbd", pool = "p", image = "c" }
`))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]*Consistency{
		"a": {FreezeCommand: "f", ThawCommand: "t", Timeout: 20 * time.Second, Fallback: "crash", WarnCrashRuns: DefaultWarnCrashRuns},
		"b": {SnapshotCommand: "snap", Fallback: "fail", WarnCrashRuns: 5},
		"c": nil,
	}
	for name, w := range want {
		if got := c.Jobs[name].Consistency; !reflect.DeepEqual(got, w) {
			t.Errorf("job %s: consistency %+v, want %+v", name, got, w)
		}
	}
}

// console-socket: under base-dir's state directory by default, relative to
// base-dir, and off with an empty string (which backy.conf(5) promises;
// it was refused as an empty value).
func TestConsoleSocket(t *testing.T) {
	for in, want := range map[string]string{
		"":                  "/b/.backy-schedule/console.sock",
		`""`:                "",
		`"run/c.sock"`:      "/b/run/c.sock",
		`"/run/backy.sock"`: "/run/backy.sock",
	} {
		text := "[global]\nbase-dir = \"/b\"\n"
		if in != "" {
			text += "console-socket = " + in + "\n"
		}
		c, err := Parse("test.toml", []byte(text))
		if err != nil {
			t.Errorf("console-socket = %s: %v", in, err)
			continue
		}
		if c.Global.ConsoleSocket != want {
			t.Errorf("console-socket = %s: %q, want %q", in, c.Global.ConsoleSocket, want)
		}
	}
}
