package main

// A member of the fleet cut off from the cluster for real: it runs under a
// uid of its own, and an iptables rule drops every packet that uid sends
// (the OUTPUT chain sees loopback traffic too), its runs' included. The
// shared test cluster and the other members are untouched; the rule is
// unique to this test process and removed in a cleanup, also when the test
// fails.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/backy/backy/internal/clitest"
	"github.com/backy/backy/internal/freezetest"
	"github.com/backy/backy/pkg/rbd/cephtest"
	"github.com/backy/backy/pkg/repo"
)

// ownUID makes member run under a uid of its own, which no other process
// uses (none has an entry in the passwd file that high), and makes what it
// needs reachable for it: its base directory and log, the store record,
// the commands, the cluster's configuration. Modes changed outside the
// rig's directory are restored in a cleanup.
func (r *fleetRig) ownUID(member string) int {
	t := r.t
	t.Helper()
	uid := 3_000_000_000 + os.Getpid()
	r.uids[member] = uid
	chmodAdd := func(path string, add os.FileMode) {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm()&add == add {
			return
		}
		if err := os.Chmod(path, fi.Mode().Perm()|add); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Chmod(path, fi.Mode().Perm()) })
	}
	for _, d := range []string{filepath.Dir(r.dir), r.dir, clitest.BinDir, filepath.Dir(r.cephConf)} {
		chmodAdd(d, 0o011)
	}
	chmodAdd(r.cephConf, 0o004)
	base := r.base(member)
	if err := os.MkdirAll(base, 0o755); err != nil {
		t.Fatal(err)
	}
	log := filepath.Join(r.dir, member+".log")
	for _, f := range []string{log, r.storeLog} {
		if err := os.WriteFile(f, nil, 0o666); err != nil {
			t.Fatal(err)
		}
		chmodAdd(f, 0o666)
	}
	for _, f := range []string{base, log} {
		if err := os.Chown(f, uid, uid); err != nil {
			t.Fatal(err)
		}
	}
	// The test binary is backy-schedule; its build directory is root's
	// alone, so the member runs a copy.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(r.dir, "uidbin")
	os.MkdirAll(bin, 0o755)
	copyFile(t, self, filepath.Join(bin, "backy-schedule"), 0o755)
	return uid
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// ownerRule is the OUTPUT rule this file's tests insert: target for every
// packet uid sends, with a comment naming the kind of rule and the test
// process (pid) that inserted it, which staleRule matches.
func ownerRule(uid int, kind string, pid int, target string) []string {
	return []string{"OUTPUT", "-m", "owner", "--uid-owner", strconv.Itoa(uid),
		"-m", "comment", "--comment", fmt.Sprintf("backy-fleet-test-%s%d", kind, pid), "-j", target}
}

// iptables runs iptables -w with op (-I, -A, -D, -C) on rule.
func iptables(op string, rule []string) ([]byte, error) {
	return exec.Command("iptables", append([]string{"-w", op}, rule...)...).CombinedOutput()
}

// staleRule matches the comment of an ownerRule; its number is the pid of
// the test process that inserted it.
var staleRule = regexp.MustCompile(`--comment "?backy-fleet-test-(?:accept-)?(\d+)"?`)

// removeStaleRules deletes the rules that test processes no longer
// running left behind (a test binary killed by go test's timeout runs no
// cleanup). Rules of live test processes are left alone (a test process
// in another pid namespace sharing this network namespace would look
// dead: there is none here). Called when a test starts, not at the cut,
// whose timing matters.
func removeStaleRules(t *testing.T) {
	t.Helper()
	out, err := exec.Command("iptables", "-w", "-S", "OUTPUT").Output()
	if err != nil {
		t.Fatalf("iptables -S OUTPUT: %v", err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		m := staleRule.FindStringSubmatch(line)
		if m == nil || !strings.HasPrefix(line, "-A OUTPUT ") {
			continue
		}
		if pid, _ := strconv.Atoi(m[1]); processRuns(pid) {
			continue
		}
		spec := strings.Fields(strings.ReplaceAll(strings.TrimPrefix(line, "-A "), `"`, ""))
		if out, err := iptables("-D", spec); err != nil {
			if _, err := iptables("-C", spec); err != nil {
				continue // another test process removed it meanwhile
			}
			t.Errorf("removing the stale rule %q: %v: %s", line, err, out)
		} else {
			t.Logf("removed a rule left behind by test process %s: %s", m[1], line)
		}
	}
}

// cutOff drops every packet uid sends, until heal is called (or the test
// ends). The rule carries a comment naming this test process, so heal
// removes this rule only, never another test's or the host's.
func (r *fleetRig) cutOff(uid int) (heal func()) {
	t := r.t
	t.Helper()
	rule := ownerRule(uid, "", os.Getpid(), "DROP")
	heal = func() {
		for range 10 { // every copy of the rule, should there be more
			if _, err := iptables("-D", rule); err != nil {
				return
			}
		}
	}
	t.Cleanup(heal)
	// First in the chain: an ACCEPT before it (a host firewall's for
	// loopback) would let the packets through.
	if out, err := iptables("-I", rule); err != nil {
		t.Fatalf("iptables -I %s: %v: %s", strings.Join(rule, " "), err, out)
	}
	return heal
}

func TestFleetCutOff(t *testing.T) {
	r := newFleetRig(t)
	needTools(t, true, "iptables")
	removeStaleRules(t)
	const cut = "d3"
	uid := r.ownUID(cut)
	members := []string{"d1", "d2", "d3"}
	for _, m := range members {
		r.start(m)
	}
	st, took := r.formed()
	c := owners(st)
	t.Logf("fleet formed, every daemon stored (%s under uid %d), in %s: owners %v", cut, uid, took.Round(time.Millisecond), c)

	// Cut it off while a store of its own runs, if one comes within an
	// interval: preferably one that holds its store lock already (its
	// publish then needs that lock at the OSD), else one that began less
	// than half a second ago (still running at the cut, but usually not
	// yet at the cluster). It must not commit after its store lock's lease
	// ran out.
	holding := func(job string) bool {
		out, err := cephtest.Rados(r.cephConf, nil, "-p", r.pool, "lock", "info", radosJobObject(job), "store")
		return err == nil && strings.Contains(string(out), `"cookie"`)
	}
	inFlight := func(locked bool) []*store {
		var out []*store
		for _, s := range r.stores() {
			if s.member != cut || !s.end.IsZero() {
				continue
			}
			if locked && holding(s.job) || !locked && time.Since(s.begin) < 500*time.Millisecond {
				out = append(out, s)
			}
		}
		return out
	}
	running := inFlight(true)
	for deadline := time.Now().Add(fleetInterval); len(running) == 0 && time.Now().Before(deadline); running = inFlight(true) {
		time.Sleep(20 * time.Millisecond)
	}
	if len(running) > 0 {
		t.Logf("cutting %s off while its store of %s holds its store lock", cut, running[0].job)
	}
	for deadline := time.Now().Add(fleetInterval); len(running) == 0 && time.Now().Before(deadline); running = inFlight(false) {
		time.Sleep(50 * time.Millisecond)
	}
	heal := r.cutOff(uid)
	cutAt := time.Now()
	t.Logf("%s cut off with %d stores of its own running", cut, len(running))

	// The others own every job within about two leases (plus the status
	// interval of the view read here).
	rest := []string{"d1", "d2"}
	took = waitFor(t, 2*fleetLease+5*time.Second, "the cut-off member's jobs owned by the others", func() (bool, string) {
		s, err := r.status(rest[0])
		if err != nil {
			return false, err.Error()
		}
		o := owners(s)
		return o[cut] == 0 && o[""] == 0 && o[rest[0]]+o[rest[1]] == fleetJobs && !slices.Contains(alive(s), cut), fmt.Sprint(o, alive(s))
	})
	t.Logf("%s cut off: its jobs owned by %v %s later (lease %s)", cut, rest, took.Round(time.Millisecond), fleetLease)
	// Cut off for three leases in all: its leases expired long ago.
	time.Sleep(time.Until(cutAt.Add(3 * fleetLease)))
	// What the in-flight stores published before the heal, when their
	// leases had long run out.
	before := map[string]bool{}
	for _, s := range running {
		for _, id := range r.revisionIDs(s.job) {
			before[id] = true
		}
	}
	// The daemon stops a run whose lease it has not renewed for 5/6
	// lease (SIGTERM, SIGKILL 5 s later): cut off for three leases, no
	// run it had at the cut still runs.
	for _, s := range running {
		if processRuns(s.pid) {
			t.Errorf("%s's store of %s (pid %d), running at the cut, still runs %s later", cut, s.job, s.pid, time.Since(cutAt).Round(time.Millisecond))
		}
	}
	heal()
	healAt := time.Now()
	log, _ := os.ReadFile(filepath.Join(r.dir, cut+".log"))
	if !strings.Contains(string(log), "fleet: lost the cluster") {
		t.Errorf("%s never said it lost the cluster:\n%s", cut, log[max(0, len(log)-3000):])
	}
	select {
	case <-r.daemons[cut].Done():
		t.Fatalf("%s exited while cut off:\n%s", cut, r.diag())
	default:
	}

	// Back: it rejoins and gets a share again, and stores again.
	took = waitFor(t, 4*fleetLease+10*time.Second, cut+" back in the fleet with a share", func() (bool, string) {
		s, err := r.status(rest[0])
		if err != nil {
			return false, err.Error()
		}
		o := owners(s)
		return o[cut] > 0 && o[""] == 0 && slices.Contains(alive(s), cut), fmt.Sprint(o, alive(s)) + "\n" + r.diag()
	})
	t.Logf("%s healed after %s cut off: back with a share %s later", cut, healAt.Sub(cutAt).Round(time.Millisecond), took.Round(time.Millisecond))
	waitFor(t, 2*time.Minute, cut+" storing again", func() (bool, string) {
		for _, s := range r.stores() {
			if s.member == cut && s.begin.After(healAt) && s.rc == 0 {
				return true, ""
			}
		}
		return false, r.diag()
	})

	for _, m := range members {
		r.daemons[m].Signal(syscall.SIGTERM)
	}
	for _, m := range members {
		if code := r.daemons[m].Exit(time.Minute); code != 0 {
			t.Errorf("%s: exit %d: %s", m, code, r.daemons[m].Stderr())
		}
	}
	if pids := processesWithEnv("BACKY_TEST_MEMBER=" + cut); len(pids) > 0 {
		t.Errorf("processes of %s still run: %v", cut, pids)
	}

	stores := r.stores()
	// Its stores running at the cut must commit before their store locks'
	// leases could have expired, or not at all: a store that held its lock
	// at the cut and sent its publish before its own lease check could
	// fail has that operation resent once the network is back, and the
	// OSD refuses it (the publish asserts the store lock: exit 5). A store
	// that had not reached the cluster yet at the cut takes its lock only
	// after the heal, a store of its own; when a store took its lock is
	// told by its revision's time (taken just after the lock).
	locked := map[int]time.Time{}
	for _, s := range stores {
		if s.rc != 0 || s.rev == "" {
			continue
		}
		if l, ok := r.revisionTime(s.job, s.rev); ok {
			locked[s.pid] = l
		}
	}
	own := map[int]bool{} // in-flight stores that took their lock after the heal
	for _, run := range running {
		for _, s := range stores {
			if s.pid != run.pid || s.member != cut {
				continue
			}
			t.Logf("%s's store of %s running at the cut: exit %d, ended %s after the cut", cut, s.job, s.rc, s.end.Sub(cutAt).Round(time.Millisecond))
			if !s.end.IsZero() && !s.end.Before(healAt) {
				t.Errorf("%s's store of %s, running at the cut, ended after the heal (%s after the cut)", cut, s.job, s.end.Sub(cutAt).Round(time.Millisecond))
			}
			if s.rc != 0 {
				// how it ended: stopped by its daemon, or refused by a
				// fence (the store's own lease check, or the OSD: "was
				// lost before the cluster applied")
				log, _ := os.ReadFile(filepath.Join(r.dir, cut+".log"))
				for _, l := range strings.Split(string(log), "\n") {
					if strings.Contains(l, s.job) && (strings.Contains(l, "store lock") || strings.Contains(l, "interrupted")) {
						t.Logf("%s: %s", cut, l)
					}
				}
			}
			if s.rc != 0 || (!s.end.IsZero() && !s.end.After(cutAt.Add(fleetLease))) {
				continue
			}
			// Cut off, it cannot take a lock: one taken before the heal
			// was taken before the cut, and its publish must have been
			// applied before the heal (its unlock waits for the heal).
			l, ok := locked[s.pid]
			if !ok && !before[s.rev] {
				t.Logf("%s's store of %s: its revision %s is gone (expired since), when it took its lock is unknown", cut, s.job, s.rev)
				continue
			}
			if l.Before(healAt) && before[s.rev] {
				t.Logf("%s's store of %s took its store lock before the cut (%s) and published before the heal", cut, s.job, l.Format("15:04:05.000"))
			} else if l.Before(healAt) {
				t.Errorf("%s's store of %s took its lock before the cut (%s, cut at %s) and committed %s after the cut, past its lease", cut, s.job, l.Format("15:04:05.000"), cutAt.Format("15:04:05.000"), s.end.Sub(cutAt).Round(time.Millisecond))
			} else {
				t.Errorf("%s's store of %s, running at the cut, took its store lock %s after the cut, %s after the heal, and committed: the run should have been stopped", cut, s.job, l.Sub(cutAt).Round(time.Millisecond), l.Sub(healAt).Round(time.Millisecond))
				own[s.pid] = true
			}
		}
	}
	// Overlaps are judged over the time each committed store held its
	// lock (its revision's time to its end), not from its process's start.
	// A store of its own that overlaps, by process time, a committed store
	// of its job whose lock time is unknown (its revision expired since)
	// cannot be judged: reported, not counted.
	var judged []*store
	for _, s := range stores {
		c := *s
		if l, ok := locked[s.pid]; ok && l.After(c.begin) {
			c.begin = l
		}
		unjudged := false
		for _, o := range stores {
			if _, known := locked[o.pid]; own[s.pid] && o.pid != s.pid && o.job == s.job && o.rc == 0 && !known && o.begin.Before(s.end) && o.until(nil).After(c.begin) {
				t.Logf("%s's store of %s (its lock %s-%s) beside %s's (pid %d, %s-%s, lock time unknown): not judged", cut, s.job, c.begin.Format("15:04:05.000"), s.end.Format("15:04:05.000"), o.member, o.pid, o.begin.Format("15:04:05.000"), o.until(nil).Format("15:04:05.000"))
				unjudged = true
			}
		}
		if !unjudged {
			judged = append(judged, &c)
		}
	}
	bad, busy := overlaps(judged, nil)
	for _, b := range bad {
		t.Error(b)
	}
	// While cut off (a lease after the cut, when its leases may have
	// expired, until healed) it started no store.
	for _, s := range stores {
		if s.member == cut && s.begin.After(cutAt.Add(fleetLease)) && s.begin.Before(healAt) {
			t.Errorf("%s started a store of %s at %s, cut off since %s", cut, s.job, s.begin.Format("15:04:05.000"), cutAt.Format("15:04:05.000"))
		}
	}
	// Back in the fleet, it started no store of a job another member was
	// storing.
	for _, b := range startedBeside(stores, cut, healAt, nil) {
		t.Errorf("%s, back, started a store of %s", cut, b)
	}
	t.Logf("%d backup stores, %d committed while overlapping another of the same job, %d busy refusals", len(stores), len(bad), busy)
}

// cutOff drops the uid's packets also where the OUTPUT chain accepts them
// before any rule appended to it, as host firewalls do for loopback (ufw:
// ufw-before-output accepts -o lo): its rule goes first. heal lets them
// through again.
func TestCutOffRuleGoesFirst(t *testing.T) {
	needTools(t, true, "iptables", "setpriv")
	removeStaleRules(t)
	uid := 3_000_000_000 + os.Getpid()
	accept := ownerRule(uid, "accept-", os.Getpid(), "ACCEPT")
	t.Cleanup(func() { iptables("-D", accept) })
	if out, err := iptables("-A", accept); err != nil {
		t.Fatalf("iptables -A: %v: %s", err, out)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	host, port, _ := net.SplitHostPort(l.Addr().String())
	reaches := func() bool {
		return exec.Command("setpriv", fmt.Sprintf("--reuid=%d", uid), fmt.Sprintf("--regid=%d", uid), "--clear-groups", "--",
			"timeout", "2", "bash", "-c", "exec 3<>/dev/tcp/"+host+"/"+port).Run() == nil
	}
	if !reaches() {
		t.Fatal("the uid cannot connect before the cut")
	}
	heal := (&fleetRig{t: t}).cutOff(uid)
	if reaches() {
		t.Fatal("cut off, the uid still connects: the DROP rule comes after the chain's ACCEPT")
	}
	heal()
	if !reaches() {
		t.Fatal("healed, the uid cannot connect")
	}
}

// revisionTime reads the time of revision id of job from the pool: the
// store's start, taken just after it got its store lock; false if the
// revision is gone (expired by a later run).
func (r *fleetRig) revisionTime(job, id string) (time.Time, bool) {
	r.t.Helper()
	rp, err := repo.Open(repo.RadosLocation{Pool: r.pool, Job: job}.String(), repo.WithCeph(repo.Ceph{Conf: r.cephConf}))
	if err != nil {
		r.t.Fatal(err)
	}
	defer rp.Close()
	rev, err := rp.LoadRevision(id)
	if errors.Is(err, repo.ErrNoRevision) {
		return time.Time{}, false
	}
	if err != nil {
		r.t.Fatalf("revision %s of %s: %v", id, job, err)
	}
	return rev.Time, true
}

// radosJobObject names a job's object in the pool (pkg/repo), which holds
// its store lock.
func radosJobObject(job string) string { return "job." + job }

// revisionIDs lists the revisions of job in the pool (none before its
// first store made it).
func (r *fleetRig) revisionIDs(job string) []string {
	r.t.Helper()
	rp, err := repo.Open(repo.RadosLocation{Pool: r.pool, Job: job}.String(), repo.WithCeph(repo.Ceph{Conf: r.cephConf}))
	if errors.Is(err, repo.ErrNotRepository) {
		return nil
	}
	if err != nil {
		r.t.Fatal(err)
	}
	defer rp.Close()
	revs, err := rp.Revisions()
	if err != nil {
		r.t.Fatal(err)
	}
	var ids []string
	for _, rev := range revs {
		ids = append(ids, rev.ID)
	}
	return ids
}

// needTools skips a test whose tools (and root, when asRoot) are not
// there; a missing tool fails it under BACKY_REQUIRE_TOOLS=1
// (freezetest.RequireEnv, which make test sets).
func needTools(t *testing.T, asRoot bool, tools ...string) {
	t.Helper()
	if asRoot && os.Geteuid() != 0 {
		t.Skip("not root: needs iptables rules")
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv(freezetest.RequireEnv) != "" {
				t.Fatalf("%s missing (scripts/deps.sh installs it), and %s is set", tool, freezetest.RequireEnv)
			}
			t.Skipf("%s missing (scripts/deps.sh installs it)", tool)
		}
	}
}

// procStat returns the fields of /proc/PID/stat after the command name
// (which is in parentheses and may hold spaces): state first, utime the
// 12th, stime the 13th.
func procStat(pid int) ([]string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil, err
	}
	return strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:])), nil
}

// processRuns reports whether pid is a live process (not a zombie).
func processRuns(pid int) bool {
	f, err := procStat(pid)
	return err == nil && len(f) > 0 && f[0] != "Z"
}

// A rule left by a test process that no longer runs is removed; one of a
// live process is kept.
func TestStaleCutOffRulesRemoved(t *testing.T) {
	needTools(t, true, "iptables")
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	rule := func(pid int) []string { return ownerRule(3_000_000_000+pid, "", pid, "DROP") }
	has := func(pid int) bool {
		_, err := iptables("-C", rule(pid))
		return err == nil
	}
	for _, pid := range []int{dead.Process.Pid, os.Getpid()} {
		t.Cleanup(func() { iptables("-D", rule(pid)) })
		if out, err := iptables("-A", rule(pid)); err != nil {
			t.Fatalf("iptables -A: %v: %s", err, out)
		}
	}
	removeStaleRules(t)
	if has(dead.Process.Pid) {
		t.Errorf("the rule of exited process %d is still there", dead.Process.Pid)
	}
	if !has(os.Getpid()) {
		t.Error("the rule of this live test process was removed")
	}
}
