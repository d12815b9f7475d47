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
	"io"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
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
	fleetRunLimit = 8 // of the 9 workers of the three daemons (6 after the kill)
	// fakedMember runs under faketime with its clock two hours ahead
	// (libfaketime: every C library clock call of the process and its
	// children, librados's included; Go's own clock reads the vDSO and is
	// not affected, and the daemon's lease logic reads only durations).
	fakedMember = "d2"
)

const fleetDaemonConf = `include = %[1]q
[global]
base-dir = "%[2]s"
rados-pool = %[3]q
fleet = "t"
fleet-member = %[4]q
fleet-lease = "3s"
fleet-run-limit = %[5]d
worker-limit = 3
status-interval = "1s"
console-addresses = []
backoff-initial = "1s"
backoff-max = "2s"
`

// storeWrapper stands in for backy-store on the daemons' PATH: backup
// stores (those with --tags) are recorded in $BACKY_TEST_STORELOG, with
// the revision a committed one printed (and their end when the daemon
// stops them with SIGTERM); every
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
now() { env -u LD_PRELOAD -u FAKETIME date +%%s.%%N; }
echo "begin $BACKY_TEST_MEMBER $job $$ $(now) $(date +%%s)" >> "$BACKY_TEST_STORELOG"
# A daemon stopping the run sends SIGTERM to the whole group: the store
# ends on it, and its end is recorded here.
trap : TERM
out=$(setpriv --pdeathsig KILL "$real" "$@")
rc=$?
[ -n "$out" ] && printf '%%s\n' "$out"
echo "end $BACKY_TEST_MEMBER $job $$ $rc $(now) $out" >> "$BACKY_TEST_STORELOG"
exit $rc
`

type fleetRig struct {
	t        *testing.T
	dir      string
	cephConf string
	pool     string
	storeLog string
	daemons  map[string]*daemontest.Daemon
	uids     map[string]int // members run under a uid of their own (cutOff)
}

func newFleetRig(t *testing.T) *fleetRig {
	cephConf := needRados(t)
	needTools(t, false, "setpriv")
	faketimeLib(t)
	others := removeFaketimeLeftovers(t) // those of earlier runs that were killed
	t.Cleanup(func() {
		// after the daemons' own clean-ups (t.Cleanup runs last first)
		alive := slices.DeleteFunc(removeFaketimeLeftovers(t), func(pid int) bool { return slices.Contains(others, pid) })
		if len(alive) > 0 {
			t.Errorf("processes under faketime outlived the test: pids %v", alive)
		}
	})
	r := &fleetRig{t: t, dir: t.TempDir(), cephConf: cephConf, daemons: map[string]*daemontest.Daemon{}, uids: map[string]int{}}
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

// faketimeLib is libfaketime's path (the faketime package installs it
// beside the faketime command).
func faketimeLib(t *testing.T) string {
	t.Helper()
	needTools(t, false, "faketime")
	lib, _ := filepath.Glob("/usr/lib/*/faketime/libfaketime.so.1")
	if len(lib) == 0 {
		t.Fatal("faketime is installed, but not /usr/lib/*/faketime/libfaketime.so.1")
	}
	return lib[0]
}

// faketimeShm names the shared memory and semaphore libfaketime makes for
// each process it is preloaded into (PID, the process's); a process that
// exits removes its own, one that is killed leaves them in /dev/shm.
var faketimeShm = regexp.MustCompile(`^(?:faketime_shm_|sem\.faketime_sem_)(\d+)$`)

// removeFaketimeLeftovers removes libfaketime's files of processes that
// are gone (the faked member is killed with SIGKILL, and with it the
// processes of its runs) and returns the pids of those still running
// (or that this user may not look at).
func removeFaketimeLeftovers(t *testing.T) (alive []int) {
	t.Helper()
	names, err := os.ReadDir("/dev/shm")
	if err != nil {
		return nil
	}
	for _, n := range names {
		m := faketimeShm.FindStringSubmatch(n.Name())
		if m == nil {
			continue
		}
		pid, _ := strconv.Atoi(m[1])
		// the pid may be another process's (or thread's) by now: only
		// one with libfaketime mapped is the one that made the files
		maps, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
		if os.IsPermission(err) || err == nil && strings.Contains(string(maps), "libfaketime") {
			if !slices.Contains(alive, pid) {
				alive = append(alive, pid)
			}
			continue
		}
		if err := os.Remove(filepath.Join("/dev/shm", n.Name())); err != nil && !os.IsNotExist(err) {
			t.Errorf("removing libfaketime's leftover: %v", err)
		}
	}
	return alive
}

func (r *fleetRig) conf(member string) string { return filepath.Join(r.dir, member+".conf") }
func (r *fleetRig) base(member string) string { return filepath.Join(r.dir, member) }

func (r *fleetRig) start(member string) {
	r.t.Helper()
	os.WriteFile(r.conf(member), []byte(fmt.Sprintf(fleetDaemonConf, filepath.Join(r.dir, "jobs.conf"), r.base(member), r.pool, member, fleetRunLimit)), 0o644)
	prog, args := "backy-schedule", []string{"-c", r.conf(member), "-l", filepath.Join(r.dir, member+".log")}
	env := append(radosEnv(r.cephConf), "PATH="+filepath.Join(r.dir, "wrap")+string(os.PathListSeparator)+clitest.BinDir+string(os.PathListSeparator)+os.Getenv("PATH"),
		"BACKY_TEST_MEMBER="+member, "BACKY_TEST_STORELOG="+r.storeLog)
	if uid, ok := r.uids[member]; ok {
		// Its own uid, so that its traffic (and its runs') can be
		// dropped by owner; its Ceph client log and admin socket in its
		// base directory (the cluster's are root's).
		base := r.base(member)
		env = append(env, "HOME="+base, "CEPH_ARGS=--log_file="+filepath.Join(base, "ceph-client.log")+" --admin_socket=")
		args = append([]string{fmt.Sprintf("--reuid=%d", uid), fmt.Sprintf("--regid=%d", uid), "--clear-groups", "--",
			filepath.Join(r.dir, "uidbin", "backy-schedule")}, args...)
		prog = "setpriv"
	}
	if member == fakedMember {
		// libfaketime preloaded into the daemon itself (the faketime
		// command would fork and stand between the test's signals and
		// the daemon).
		env = append(env, "LD_PRELOAD="+faketimeLib(r.t), "FAKETIME=+2h")
	}
	r.daemons[member] = daemontest.Start(r.t, prog, env, args, r.dir)
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
	seen        time.Time // the time the store's process tree was told (faked for fakedMember)
	rev         string    // the revision it printed (committed)
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
		case len(w) == 6 && w[0] == "begin":
			pid, _ := strconv.Atoi(w[3])
			s := &store{member: w[1], job: w[2], pid: pid, begin: parseTime(w[4]), rc: -1, seen: parseTime(w[5])}
			byPid[w[3]] = s
			out = append(out, s)
		case (len(w) == 6 || len(w) == 7) && w[0] == "end":
			if s := byPid[w[3]]; s != nil {
				s.end = parseTime(w[5])
				s.rc, _ = strconv.Atoi(w[4])
				if len(w) == 7 {
					s.rev = w[6]
				}
			}
		}
	}
	return out
}

// until is when s ended: its end, or for a store that never ended (killed
// with its daemon: the parent-death signal) its member's death in
// killedAt, or now.
func (s *store) until(killedAt map[string]time.Time) time.Time {
	if !s.end.IsZero() {
		return s.end
	}
	if t, ok := killedAt[s.member]; ok && t.After(s.begin) {
		return t
	}
	return time.Now()
}

// startedBeside lists the stores of member that began after since while a
// store of the same job by another member ran.
func startedBeside(stores []*store, member string, since time.Time, killedAt map[string]time.Time) []string {
	var out []string
	for _, s := range stores {
		if s.member != member || !s.begin.After(since) {
			continue
		}
		for _, o := range stores {
			if o.job == s.job && o.member != member && o.begin.Before(s.begin) && o.until(killedAt).After(s.begin) {
				out = append(out, fmt.Sprintf("%s at %s while %s's store ran", s.job, s.begin.Format("15:04:05.000"), o.member))
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
		end := func(s *store) time.Time { return s.until(killedAt) }
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

// consoleCmd sends one command to a console socket and returns the reply
// (the greeting line dropped).
func consoleCmd(t *testing.T, sock, cmd string) string {
	t.Helper()
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	fmt.Fprintf(c, "%s\nquit\n", cmd)
	b, _ := io.ReadAll(c)
	out := string(b)
	if _, rest, ok := strings.Cut(out, "\n"); ok {
		out = rest
	}
	return out
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

// formed waits until three members own every job, each some of them in
// d1's view, and each committed a store, and returns the status d1 wrote
// then and how long it took. (d1 writes its view every status interval: a
// member can have taken jobs and stored before d1's view shows it owning
// any; without "each some", make test once caught d3 storing while d1's
// last status still gave d2 its share.)
func (r *fleetRig) formed() (*jobstatus.Status, time.Duration) {
	t := r.t
	t.Helper()
	var st *jobstatus.Status
	took := waitFor(t, 150*time.Second, "three members owning every job, each with a committed store", func() (bool, string) {
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
		ok := len(alive(st)) == 3 && c[""] == 0 && len(st.Jobs) == fleetJobs && c["d1"] > 0 && c["d2"] > 0 && c["d3"] > 0
		stored := map[string]bool{}
		for _, s := range r.stores() {
			stored[s.member] = stored[s.member] || s.rc == 0
		}
		ok = ok && len(stored) == 3 && stored["d1"] && stored["d2"] && stored["d3"]
		return ok, fmt.Sprintf("alive %v, owners %v, stored %v", alive(st), c, stored)
	})
	return st, took
}

func TestFleet(t *testing.T) {
	r := newFleetRig(t)
	members := []string{"d1", "d2", "d3"}
	for _, m := range members {
		r.start(m)
	}

	st, took := r.formed()
	c := owners(st)
	t.Logf("fleet formed, every daemon stored, in %s: owners %v", took.Round(time.Millisecond), c)
	for _, m := range members {
		if c[m] == 0 || c[m] > 2*fleetJobs/3 {
			t.Errorf("%s owns %d of %d jobs: %v", m, c[m], fleetJobs, c)
		}
	}
	// The console of d1 shows the whole fleet: the three members and every
	// job with its owner.
	out := consoleCmd(t, filepath.Join(r.base("d1"), ".backy-schedule", "console.sock"), "fleet")
	for _, m := range members {
		if !regexp.MustCompile(`(?m)^` + m + ` +true `).MatchString(out) {
			t.Errorf("console fleet: no live member %s:\n%s", m, out)
		}
	}
	if n := len(regexp.MustCompile(`(?m)^job\d\d +d[123] `).FindAllString(out, -1)); n != fleetJobs {
		t.Errorf("console fleet: %d jobs with an owner, want %d:\n%s", n, fleetJobs, out)
	}
	// runall on d1 runs d1's jobs only, and says how many it left to the
	// others (it queued them all, marked to run at once should one move
	// here, and showed them as queued)
	out = consoleCmd(t, filepath.Join(r.base("d1"), ".backy-schedule", "console.sock"), "runall")
	if want := fmt.Sprintf(", %d left to other members of the fleet\n", fleetJobs-c["d1"]); !strings.Contains(out, want) {
		t.Errorf("console runall on d1 (owning %d of %d): %q, want it to say %q", c["d1"], fleetJobs, out, want)
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
	// Its jobs are owned by the others within a lease and a quarter of
	// its death (plus the status interval of the view read here).
	took = waitFor(t, 2*fleetLease+5*time.Second, "the killed daemon's jobs owned by the others", func() (bool, string) {
		s, err := r.status(rest[0])
		if err != nil {
			return false, err.Error()
		}
		o := owners(s)
		return o[victim] == 0 && o[""] == 0 && o[rest[0]]+o[rest[1]] == fleetJobs, fmt.Sprint(o)
	})
	t.Logf("kill -9 of %s: its jobs owned by %v %s later (lease %s)", victim, rest, took.Round(time.Millisecond), fleetLease)
	// Every job is due (the fleet is saturated: on this shared machine
	// runs take longer than the interval allows), so a job runs again
	// once it is owned again and a worker of its new owner is free, after
	// the survivors' own due jobs that waited longer: the bound is loose;
	// the takeover itself is the ownership checked above.
	limit := 2 * time.Minute
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
	// When each began again (the store's start: the run's own duration
	// and the wait for a worker or a fleet run slot are in the figure
	// above, not here).
	var again []time.Duration
	began := r.stores()
	for _, j := range victimJobs {
		first := time.Time{}
		for _, s := range began {
			if s.job == j && s.member != victim && s.begin.After(killedAt) && (first.IsZero() || s.begin.Before(first)) {
				first = s.begin
			}
		}
		again = append(again, first.Sub(killedAt).Round(time.Millisecond))
	}
	slices.Sort(again)
	t.Logf("kill -9 of %s: its jobs' stores began again %v after the kill (lease %s)", victim, again, fleetLease)
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

	// A daemon whose loop hangs lets its jobs go: a reload that reads a
	// repository in a cluster whose monitor does not answer holds the
	// loop for the client's mount time-out (8 s here, 300 s by default).
	// Its member renewed the job leases all the while, so that its jobs
	// ran nowhere; now the others own them until the loop comes round.
	// (Not the member under faketime: its librados waits by a clock two
	// hours ahead.)
	hung, keeper := other, paused
	if hung == fakedMember {
		hung, keeper = paused, other
	}
	hungConf, _ := os.ReadFile(r.conf(hung))
	dead := filepath.Join(r.dir, "dead.conf")
	os.WriteFile(dead, []byte("[global]\nmon_host = 127.0.0.1:1\nauth_cluster_required = none\nauth_service_required = none\nauth_client_required = none\nclient_mount_timeout = 8\n"), 0o644)
	os.WriteFile(r.conf(hung), append(slices.Clone(hungConf), fmt.Sprintf("[jobs.dead]\nschedule = \"fast\"\nrepository = \"rados:nopool/dead\"\nceph-conf = %q\nsource = { type = \"file\", path = %q }\n", dead, filepath.Join(r.dir, "img"))...), 0o644)
	r.daemons[hung].Signal(syscall.SIGHUP)
	hungAt := time.Now()
	took = waitFor(t, 8*time.Second, hung+"'s jobs owned by "+keeper+" while "+hung+"'s loop hangs", func() (bool, string) {
		s, err := r.status(keeper)
		if err != nil {
			return false, err.Error()
		}
		o := owners(s)
		return o[hung] == 0 && o[keeper] == fleetJobs, fmt.Sprint(o) + "\n" + r.diag()
	})
	t.Logf("%s's loop hung by a reload: %s owned every job %s later", hung, keeper, took.Round(time.Millisecond))
	os.WriteFile(r.conf(hung), hungConf, 0o644)
	time.Sleep(time.Until(hungAt.Add(9 * time.Second)))
	r.daemons[hung].Signal(syscall.SIGHUP)
	eventually(t, 6*fleetLease+20*time.Second, hung+" back in the fleet after its loop came round", func() (bool, string) {
		s, err := r.status(keeper)
		if err != nil {
			return false, err.Error()
		}
		o := owners(s)
		return o[hung] > 0 && o[keeper] > 0 && o[""] == 0, fmt.Sprint(o) + "\n" + r.diag()
	})

	if os.Getenv("BACKY_FAULTS_LONG") != "" {
		// The killed daemon comes back and takes its share again; then
		// kill -9 of another one, whichever owns fewest jobs this time.
		r.start(victim)
		rest = append(rest, victim)
		eventually(t, 10*fleetLease+30*time.Second, victim+" back with its share", func() (bool, string) {
			s, err := r.status(other)
			if err != nil {
				return false, err.Error()
			}
			o := owners(s)
			return o[victim] > 0 && o[paused] > 0 && o[other] > 0 && o[""] == 0, fmt.Sprint(o) + "\n" + r.diag()
		})
		s, _ := r.status(other)
		o := owners(s)
		second := slices.MinFunc([]string{paused, victim}, func(a, b string) int { return o[a] - o[b] })
		r.daemons[second].Signal(syscall.SIGKILL)
		killed[second] = time.Now()
		r.daemons[second].Exit(10 * time.Second)
		rest = slices.DeleteFunc(rest, func(m string) bool { return m == second })
		took := waitFor(t, 2*fleetLease+5*time.Second, "the second killed daemon's jobs owned by the others", func() (bool, string) {
			s, err := r.status(other)
			if err != nil {
				return false, err.Error()
			}
			o := owners(s)
			return o[second] == 0 && o[""] == 0, fmt.Sprint(o)
		})
		t.Logf("kill -9 of %s (owning %d jobs): owned by %v %s later", second, o[second], rest, took.Round(time.Millisecond))
		if pids := processesWithEnv("BACKY_TEST_MEMBER=" + second); len(pids) > 0 {
			t.Errorf("processes of the killed daemon still run: %v", pids)
		}
		time.Sleep(fleetInterval)
	}

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
	// A store the killed daemon left unended died with it: it ran until
	// the kill, not for ever (before, this check counted it as running
	// and failed 1 run of 3 at load 15-21: the resumed daemon's store of a
	// job whose store had died with the killed daemon a minute before).
	if after := startedBeside(stores, paused, resumedAt, killed); len(after) > 0 {
		t.Errorf("the resumed daemon started stores of jobs the other daemon was storing: %v", after)
	}
	t.Logf("%d backup stores, %d committed while overlapping another of the same job, %d busy refusals", len(stores), len(bad), busy)
	// A refusal is expected only where a killed daemon's store left its
	// repository lock behind: at most once per job taken over (the retry
	// comes an interval later, after the lock's lease).
	if busy > fleetJobs/3*len(killed)+len(victimJobs) {
		t.Errorf("%d busy refusals: jobs ran on two daemons at once", busy)
	}

	// fleet-run-limit: never more stores at once than slots, and the
	// limit did hold runs back.
	most := 0
	for _, a := range stores {
		n := 0
		for _, b := range stores {
			end := b.end
			if end.IsZero() {
				end = killed[b.member]
			}
			if !b.begin.After(a.begin) && (end.IsZero() || end.After(a.begin)) {
				n++
			}
		}
		most = max(most, n)
	}
	limited := 0
	for _, m := range members {
		log, _ := os.ReadFile(filepath.Join(r.dir, m+".log"))
		limited += strings.Count(string(log), "not run: fleet: run limit reached")
		// A job waiting for a run slot retries every quarter lease: its
		// log says so once, and "run started" only when it starts (each
		// retry logged both, 152 lines for 6 runs in a review's 70 s).
		last := map[string]string{}
		for _, line := range strings.Split(string(log), "\n") {
			job, rest, ok := strings.Cut(strings.TrimPrefix(line, line[:min(len(line), 20)]), ": ")
			if !ok {
				continue
			}
			kind := rest
			switch {
			case strings.HasPrefix(rest, "not run: fleet: run limit reached"):
				kind = "limit"
			case strings.HasPrefix(rest, "run started"):
				kind = "started"
			}
			if kind == "limit" && (last[job] == "limit" || last[job] == "started") {
				t.Errorf("%s: %s: \"run limit reached\" after %q: a start logged that did not start, or the wait said twice", m, job, last[job])
			}
			last[job] = kind
		}
	}
	t.Logf("at most %d stores at once (fleet-run-limit %d); %d runs held back by the limit", most, fleetRunLimit, limited)
	if most > fleetRunLimit {
		t.Errorf("%d stores at once, fleet-run-limit is %d", most, fleetRunLimit)
	}
	// The faked daemon's clock was two hours ahead, and it still took
	// part: it stored jobs, and the record holds no double commit.
	faked := 0
	for _, s := range stores {
		if s.member == fakedMember {
			faked++
			if d := s.seen.Sub(s.begin); d < 110*time.Minute || d > 130*time.Minute {
				t.Errorf("a store of %s saw the time %s, %s off the real clock: faketime not in effect", fakedMember, s.seen, d)
				break
			}
		}
	}
	if faked == 0 {
		t.Errorf("%s (clock two hours ahead) stored nothing", fakedMember)
	}
	if len(stores) < fleetJobs+len(victimJobs) {
		t.Errorf("only %d stores", len(stores))
	}
	// A member stopped cleanly (SIGTERM above) says so in its last status,
	// and does not count itself among the live members (it did).
	for _, m := range rest {
		st, err := r.status(m)
		if err != nil {
			t.Fatalf("%s's last status: %v", m, err)
		}
		if st.Stopped.IsZero() || st.Fleet == nil || slices.Contains(alive(st), m) {
			t.Errorf("%s's last status after SIGTERM: stopped %v, alive %v; want stopped and not alive", m, st.Stopped, alive(st))
		}
	}
}

// The store record's judge: overlapping stores of one job that both
// committed are found; a refusal (exit 5) beside a commit is counted, not
// judged; a store that never ended runs until its daemon was killed.
func TestFleetOverlapJudge(t *testing.T) {
	at := func(s int) time.Time { return time.Unix(1000+int64(s), 0) }
	stores := []*store{
		{member: "d1", job: "a", begin: at(0), end: at(10), rc: 0},
		{member: "d2", job: "a", begin: at(5), end: at(12), rc: 0}, // both committed while overlapping
		{member: "d2", job: "b", begin: at(0), end: at(10), rc: 0},
		{member: "d1", job: "b", begin: at(2), end: at(3), rc: 5}, // refused: counted
		{member: "d3", job: "c", begin: at(0), rc: -1},            // killed at 4
		{member: "d1", job: "c", begin: at(6), end: at(9), rc: 0},
		{member: "d1", job: "d", begin: at(0), end: at(5), rc: 0},
		{member: "d2", job: "d", begin: at(5), end: at(8), rc: 0}, // one after the other
	}
	bad, busy := overlaps(stores, map[string]time.Time{"d3": at(4)})
	if len(bad) != 1 || !strings.HasPrefix(bad[0], "a: store by d1") || busy != 1 {
		t.Errorf("bad %q, busy %d; want one double commit of a and one refusal", bad, busy)
	}
	// Stores of d1 begun after 1: b's (refused) beside d2's, and c's after
	// killed d3's store died with it at 4; unless d3 was not killed.
	if got := startedBeside(stores, "d1", at(1), map[string]time.Time{"d3": at(4)}); len(got) != 1 || !strings.HasPrefix(got[0], "b at") {
		t.Errorf("started beside, d3 killed at 4: %q; want b's only", got)
	}
	if got := startedBeside(stores, "d1", at(1), nil); len(got) != 2 || !strings.HasPrefix(got[1], "c at") {
		t.Errorf("started beside, d3 not killed: %q; want b's and c's", got)
	}
}

// TestFaketimeLeftoversRemoved: the files of a process under libfaketime
// stay while it runs, and go once it was killed.
func TestFaketimeLeftoversRemoved(t *testing.T) {
	cmd := exec.Command("sleep", "30")
	cmd.Env = append(os.Environ(), "LD_PRELOAD="+faketimeLib(t), "FAKETIME=+2h")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	pid := cmd.Process.Pid
	files := []string{fmt.Sprintf("/dev/shm/faketime_shm_%d", pid), fmt.Sprintf("/dev/shm/sem.faketime_sem_%d", pid)}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(files[0]); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("libfaketime made no %s", files[0])
		}
	}
	if alive := removeFaketimeLeftovers(t); !slices.Contains(alive, pid) {
		t.Errorf("running pid %d not reported alive: %v", pid, alive)
	}
	for _, f := range files {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("a running process's file was removed: %v", err)
		}
	}
	cmd.Process.Kill()
	cmd.Wait()
	if alive := removeFaketimeLeftovers(t); slices.Contains(alive, pid) {
		t.Errorf("killed pid %d reported alive", pid)
	}
	for _, f := range files {
		if _, err := os.Stat(f); !os.IsNotExist(err) {
			t.Errorf("%s left after its process was killed: %v", f, err)
		}
	}
}
