package main

// A fleet of three backy-schedule processes sharing thirty jobs whose
// repositories are in one pool of the throw-away Ceph cluster, with short
// leases: ownership spread, kill -9 of the daemon owning most jobs, a
// daemon paused (SIGSTOP) past its lease and resumed, and a reload on one
// daemon only. Every backup store the daemons start goes through a wrapper
// script that records when it began and ended and how, by which daemon:
// from that record, no two stores of one job may both commit while they
// overlap, and the busy refusals (exit 5, the repository lock held) are
// counted.

import (
	"bufio"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/backy/backy/internal/clitest"
	"github.com/backy/backy/pkg/daemon/daemontest"
	"github.com/backy/backy/pkg/jobstatus"
	"github.com/backy/backy/pkg/rbd/cephtest"
)

const (
	fleetJobs     = 30
	fleetLease    = 3 * time.Second
	fleetInterval = 20 * time.Second
)

const fleetDaemonConf = `include = %[1]q
[global]
base-dir = "%[2]s"
rados-pool = %[3]q
fleet = "t"
fleet-member = %[4]q
fleet-lease = "3s"
worker-limit = 3
status-interval = "1s"
console-addresses = []
backoff-initial = "1s"
backoff-max = "2s"
`

// storeWrapper stands in for backy-store on the daemons' PATH: backup
// stores (those with --tags) are recorded in $BACKY_TEST_STORELOG; every
// call runs the real backy-store with SIGKILL as its parent-death signal,
// so the wrapper does not change what happens when a daemon dies.
const storeWrapper = `#!/bin/sh
real=%[1]q
case " $* " in
*" --tags "*) ;;
*) exec setpriv --pdeathsig KILL "$real" "$@" ;;
esac
prev=; job=
for a in "$@"; do [ "$prev" = -b ] && job=${a##*/}; prev=$a; done
echo "begin $BACKY_TEST_MEMBER $job $$ $(date +%%s.%%N)" >> "$BACKY_TEST_STORELOG"
setpriv --pdeathsig KILL "$real" "$@"
rc=$?
echo "end $BACKY_TEST_MEMBER $job $$ $rc $(date +%%s.%%N)" >> "$BACKY_TEST_STORELOG"
exit $rc
`

type fleetRig struct {
	t        *testing.T
	dir      string
	cephConf string
	pool     string
	storeLog string
	daemons  map[string]*daemontest.Daemon
}

func newFleetRig(t *testing.T) *fleetRig {
	cephConf := needRados(t)
	if _, err := os.Stat("/usr/bin/setpriv"); err != nil {
		t.Skip("setpriv (util-linux) missing")
	}
	r := &fleetRig{t: t, dir: t.TempDir(), cephConf: cephConf, daemons: map[string]*daemontest.Daemon{}}
	r.pool = cephtest.Pool(t, cephConf, fmt.Sprintf("fleet-%d", os.Getpid()))
	r.storeLog = filepath.Join(r.dir, "stores.log")
	wrapDir := filepath.Join(r.dir, "wrap")
	os.MkdirAll(wrapDir, 0o755)
	os.WriteFile(filepath.Join(wrapDir, "backy-store"), []byte(fmt.Sprintf(storeWrapper, filepath.Join(clitest.BinDir, "backy-store"))), 0o755)

	img := make([]byte, 1<<20)
	for i := range img {
		img[i] = byte(i * 7 / 4096)
	}
	os.WriteFile(filepath.Join(r.dir, "img"), img, 0o644)
	var b strings.Builder
	fmt.Fprintf(&b, "[schedules.fast]\nfast = { interval = %q, keep = 2 }\n", fleetInterval.String())
	for i := range fleetJobs {
		fmt.Fprintf(&b, "[jobs.job%02d]\nschedule = \"fast\"\nverify-sample = 0\nsource = { type = \"file\", path = %q }\n", i, filepath.Join(r.dir, "img"))
	}
	os.WriteFile(filepath.Join(r.dir, "jobs.conf"), []byte(b.String()), 0o644)
	return r
}

func (r *fleetRig) conf(member string) string { return filepath.Join(r.dir, member+".conf") }
func (r *fleetRig) base(member string) string { return filepath.Join(r.dir, member) }

func (r *fleetRig) start(member string) {
	r.t.Helper()
	os.WriteFile(r.conf(member), []byte(fmt.Sprintf(fleetDaemonConf, filepath.Join(r.dir, "jobs.conf"), r.base(member), r.pool, member)), 0o644)
	env := append(radosEnv(r.cephConf), "PATH="+filepath.Join(r.dir, "wrap")+string(os.PathListSeparator)+clitest.BinDir+string(os.PathListSeparator)+os.Getenv("PATH"),
		"BACKY_TEST_MEMBER="+member, "BACKY_TEST_STORELOG="+r.storeLog)
	r.daemons[member] = daemontest.Start(r.t, "backy-schedule", env, []string{"-c", r.conf(member), "-l", filepath.Join(r.dir, member+".log")}, r.dir)
}

// diag is the tail of every daemon's log and stderr, for failures.
func (r *fleetRig) diag() string {
	var b strings.Builder
	for _, m := range slices.Sorted(maps.Keys(r.daemons)) {
		log, _ := os.ReadFile(filepath.Join(r.dir, m+".log"))
		fmt.Fprintf(&b, "--- %s log:\n%s\n--- %s stderr:\n%s\n", m, log[max(0, len(log)-3000):], m, r.daemons[m].Stderr())
	}
	return b.String()
}

// status is member's status file: the whole fleet as it sees it.
func (r *fleetRig) status(member string) (*jobstatus.Status, error) {
	return jobstatus.Read(filepath.Join(r.base(member), "status"))
}

// owners counts the jobs per owner in member's view; "" counts the
// jobs without one.
func owners(st *jobstatus.Status) map[string]int {
	c := map[string]int{}
	for _, j := range st.Jobs {
		c[j.Owner]++
	}
	return c
}

func alive(st *jobstatus.Status) []string {
	var out []string
	if st.Fleet != nil {
		for _, m := range st.Fleet.Members {
			if m.Alive {
				out = append(out, m.Name)
			}
		}
	}
	return out
}

// store is one backup store as the wrapper recorded it.
type store struct {
	member, job string
	pid         int
	begin, end  time.Time // end zero: never ended (killed with its daemon)
	rc          int
}

func parseTime(s string) time.Time {
	f, _ := strconv.ParseFloat(s, 64)
	return time.Unix(0, int64(f*1e9))
}

func (r *fleetRig) stores() []*store {
	f, err := os.Open(r.storeLog)
	if err != nil {
		return nil
	}
	defer f.Close()
	byPid := map[string]*store{}
	var out []*store
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		w := strings.Fields(sc.Text())
		switch {
		case len(w) == 5 && w[0] == "begin":
			pid, _ := strconv.Atoi(w[3])
			s := &store{member: w[1], job: w[2], pid: pid, begin: parseTime(w[4]), rc: -1}
			byPid[w[3]] = s
			out = append(out, s)
		case len(w) == 6 && w[0] == "end":
			if s := byPid[w[3]]; s != nil {
				s.end = parseTime(w[5])
				s.rc, _ = strconv.Atoi(w[4])
			}
		}
	}
	return out
}

// overlaps checks the record: two stores of one job that overlap in time
// may not both have committed (exit 0). A store that never ended was
// killed with its daemon; it counts as running until killedAt of its
// member (or now).
func overlaps(stores []*store, killedAt map[string]time.Time) (bad []string, busy int) {
	byJob := map[string][]*store{}
	for _, s := range stores {
		byJob[s.job] = append(byJob[s.job], s)
		if s.rc == 5 {
			busy++
		}
	}
	for job, ss := range byJob {
		sort.Slice(ss, func(i, j int) bool { return ss[i].begin.Before(ss[j].begin) })
		end := func(s *store) time.Time {
			if !s.end.IsZero() {
				return s.end
			}
			if t, ok := killedAt[s.member]; ok && t.After(s.begin) {
				return t
			}
			return time.Now()
		}
		for i, a := range ss {
			for _, b := range ss[i+1:] {
				if b.begin.Before(end(a)) && a.rc == 0 && b.rc == 0 {
					bad = append(bad, fmt.Sprintf("%s: store by %s (pid %d, %s-%s) and by %s (pid %d, %s-%s) both committed",
						job, a.member, a.pid, a.begin.Format("15:04:05.000"), end(a).Format("15:04:05.000"),
						b.member, b.pid, b.begin.Format("15:04:05.000"), end(b).Format("15:04:05.000")))
				}
			}
		}
	}
	return bad, busy
}

// processesWithEnv lists the processes whose environment holds kv.
func processesWithEnv(kv string) []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err == nil && slices.Contains(strings.Split(string(b), "\x00"), kv) {
			pids = append(pids, pid)
		}
	}
	return pids
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) time.Duration {
	t.Helper()
	start := time.Now()
	eventually(t, timeout, what, cond)
	return time.Since(start)
}

func TestFleet(t *testing.T) {
	r := newFleetRig(t)
	members := []string{"d1", "d2", "d3"}
	for _, m := range members {
		r.start(m)
	}

	// Every job owned, three members alive, every job backed up once.
	var st *jobstatus.Status
	took := waitFor(t, 150*time.Second, "three members owning every job, each job backed up", func() (bool, string) {
		for m, d := range r.daemons {
			select {
			case <-d.Done():
				t.Fatalf("%s exited:\n%s", m, r.diag())
			default:
			}
		}
		var err error
		if st, err = r.status("d1"); err != nil || st.Fleet == nil {
			return false, fmt.Sprint(err) + "\n" + r.diag()
		}
		c := owners(st)
		ok := len(alive(st)) == 3 && c[""] == 0 && len(st.Jobs) == fleetJobs
		for _, j := range st.Jobs {
			ok = ok && j.LastResult == "ok"
		}
		return ok, fmt.Sprintf("alive %v, owners %v", alive(st), c)
	})
	c := owners(st)
	t.Logf("fleet formed and every job backed up in %s: owners %v", took.Round(time.Millisecond), c)
	for _, m := range members {
		if c[m] == 0 || c[m] > 2*fleetJobs/3 {
			t.Errorf("%s owns %d of %d jobs: %v", m, c[m], fleetJobs, c)
		}
	}
	// Each daemon's view agrees on who owns what.
	for _, m := range members[1:] {
		other, err := r.status(m)
		if err != nil {
			t.Fatal(err)
		}
		for name, j := range st.Jobs {
			if o := other.Jobs[name].Owner; o != j.Owner {
				t.Logf("%s: d1 sees owner %s, %s sees %s (views are a status interval apart)", name, j.Owner, m, o)
			}
		}
	}

	// kill -9 of the daemon owning most jobs: its jobs run again on the
	// others within the interval plus twice the lease plus a run.
	victim := slices.MaxFunc(members, func(a, b string) int { return c[a] - c[b] })
	var victimJobs []string
	for name, j := range st.Jobs {
		if j.Owner == victim {
			victimJobs = append(victimJobs, name)
		}
	}
	killed := map[string]time.Time{}
	r.daemons[victim].Signal(syscall.SIGKILL)
	killedAt := time.Now()
	killed[victim] = killedAt
	r.daemons[victim].Exit(10 * time.Second)
	rest := slices.DeleteFunc(slices.Clone(members), func(m string) bool { return m == victim })
	// The jobs are always due (runs on this loaded machine take longer
	// than the interval allows), so a job runs again once it is owned
	// again and a worker of its new owner is free.
	limit := fleetInterval + 2*fleetLease + 15*time.Second
	took = waitFor(t, limit, fmt.Sprintf("%d jobs of killed %s run again by %v", len(victimJobs), victim, rest), func() (bool, string) {
		done := map[string]bool{}
		for _, s := range r.stores() {
			if s.begin.After(killedAt) && s.member != victim && (s.rc == 0 || s.rc == 5) {
				done[s.job] = true // ran again (a refusal: the dead run's repository lock was still there)
			}
		}
		var missing []string
		for _, j := range victimJobs {
			if !done[j] {
				missing = append(missing, j)
			}
		}
		return len(missing) == 0, fmt.Sprint("missing ", missing) + "\n" + r.diag()
	})
	t.Logf("kill -9 of %s (owning %d jobs): every one ran again on the others within %s (limit %s)", victim, len(victimJobs), took.Round(time.Millisecond), limit)
	// Its runs died with it (parent-death signal): no process started
	// with its environment is left.
	if pids := processesWithEnv("BACKY_TEST_MEMBER=" + victim); len(pids) > 0 {
		t.Errorf("processes of the killed daemon still run: %v", pids)
	}

	// SIGSTOP of one of the two left past its lease; the other takes
	// everything; after SIGCONT the resumed daemon starts no store of a
	// job the other one owns.
	paused, other := rest[0], rest[1]
	r.daemons[paused].Signal(syscall.SIGSTOP)
	stoppedAt := time.Now()
	eventually(t, 3*fleetLease+10*time.Second, other+" owning every job", func() (bool, string) {
		s, err := r.status(other)
		if err != nil {
			return false, err.Error()
		}
		o := owners(s)
		return o[other] == fleetJobs, fmt.Sprint(o) + "\n" + r.diag()
	})
	time.Sleep(time.Until(stoppedAt.Add(2 * fleetLease)))
	r.daemons[paused].Signal(syscall.SIGCONT)
	resumedAt := time.Now()
	t.Logf("%s paused for %s", paused, resumedAt.Sub(stoppedAt).Round(time.Millisecond))
	// Both daemons again, sharing the jobs.
	eventually(t, 4*fleetLease+10*time.Second, "the resumed daemon back in the fleet", func() (bool, string) {
		s, err := r.status(other)
		if err != nil {
			return false, err.Error()
		}
		o := owners(s)
		return o[paused] > 0 && o[other] > 0 && o[""] == 0, fmt.Sprint(o) + "\n" + r.diag()
	})

	// A reload on one daemon only that would change its fleet settings
	// is refused; the daemon goes on as it was.
	conf, _ := os.ReadFile(r.conf(other))
	os.WriteFile(r.conf(other), []byte(strings.Replace(string(conf), `fleet-lease = "3s"`, `fleet-lease = "9s"`, 1)), 0o644)
	r.daemons[other].Signal(syscall.SIGHUP)
	eventually(t, 10*time.Second, "the refused reload", func() (bool, string) {
		log, _ := os.ReadFile(filepath.Join(r.dir, other+".log"))
		return strings.Contains(string(log), "the fleet settings cannot change while running"), string(log[max(0, len(log)-2000):])
	})
	time.Sleep(2 * fleetLease)

	for _, m := range rest {
		r.daemons[m].Signal(syscall.SIGTERM)
	}
	for _, m := range rest {
		if code := r.daemons[m].Exit(time.Minute); code != 0 {
			t.Errorf("%s: exit %d: %s", m, code, r.daemons[m].Stderr())
		}
	}
	stores := r.stores()
	bad, busy := overlaps(stores, killed)
	for _, b := range bad {
		t.Error(b)
	}
	var after []string
	for _, s := range stores {
		if s.member == paused && s.begin.After(resumedAt) {
			for _, o := range stores {
				if o.job == s.job && o.member != paused && o.begin.Before(s.begin) && (o.end.IsZero() || o.end.After(s.begin)) {
					after = append(after, fmt.Sprintf("%s at %s while %s's store ran", s.job, s.begin.Format("15:04:05.000"), o.member))
				}
			}
		}
	}
	if len(after) > 0 {
		t.Errorf("the resumed daemon started stores of jobs the other daemon was storing: %v", after)
	}
	t.Logf("%d backup stores, %d committed while overlapping another of the same job, %d busy refusals", len(stores), len(bad), busy)
	if len(stores) < fleetJobs+len(victimJobs) {
		t.Errorf("only %d stores", len(stores))
	}
}
