package rados

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/backy/backy/internal/clitest"
	"github.com/backy/backy/pkg/rbd/cephtest"
	"github.com/backy/backy/pkg/repo"
)

var binDir string

func TestMain(m *testing.M) {
	if repo.RadosAvailable {
		dir, err := clitest.BuildCommands("")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		binDir = dir
		defer os.RemoveAll(dir)
	}
	code := cephtest.Main(m)
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// rig is a pool on the test cluster and the environment the commands run
// with: short leases, no purge grace.
type rig struct {
	t          *testing.T
	conf, pool string
	env        []string
	dir        string
}

func newRig(t *testing.T, pool string, extraEnv ...string) *rig {
	if !repo.RadosAvailable {
		t.Skip("built without RADOS (tags librbd,pacific)")
	}
	conf := cephtest.Start(t)
	cephtest.Pool(t, conf, pool)
	env := append(os.Environ(), "CEPH_CONF="+conf, repo.LeaseEnv+"=2s", repo.GraceEnv+"=0s")
	return &rig{t: t, conf: conf, pool: pool, env: append(env, extraEnv...), dir: t.TempDir()}
}

func (r *rig) loc(job string) string { return "rados:" + r.pool + "/" + job }

func (r *rig) cmd(stdin []byte, name string, args ...string) *exec.Cmd {
	c := exec.Command(filepath.Join(binDir, name), args...)
	c.Env = r.env
	if stdin != nil {
		c.Stdin = bytes.NewReader(stdin)
	}
	return c
}

// run runs a command to its end: exit code, stdout, stderr.
func (r *rig) run(stdin []byte, name string, args ...string) (int, string, string) {
	r.t.Helper()
	c := r.cmd(stdin, name, args...)
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	return clitest.ExitCode(r.t, c.Run()), out.String(), errb.String()
}

func (r *rig) must(stdin []byte, name string, args ...string) string {
	r.t.Helper()
	rc, out, errs := r.run(stdin, name, args...)
	if rc != 0 {
		r.t.Fatalf("%s %s: exit %d: %s", name, strings.Join(args, " "), rc, errs)
	}
	return out
}

// image writes a test image of n chunks: the template's content with the
// chunks in own changed (cloned VMs share the rest); returns path and
// SHA-256.
func (r *rig) image(name string, n int, own map[int]byte) (string, string) {
	b := make([]byte, n*repo.ChunkSize)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	for c, v := range own {
		b[c*repo.ChunkSize+17] ^= v
	}
	path := filepath.Join(r.dir, name)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		r.t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return path, hex.EncodeToString(sum[:])
}

func (r *rig) stream(img string) []byte {
	return []byte(r.must(nil, "backy-extract", "file", img))
}

type revInfo struct {
	ID   string   `json:"id"`
	Tags []string `json:"tags"`
}

// revisions lists the revisions of a repository: a job of the rig's pool
// (its name), or any location.
func (r *rig) revisions(job string) []revInfo {
	r.t.Helper()
	out := r.must(nil, "backy-store", "-b", r.where(job), "status", "--json")
	var revs []revInfo
	if err := json.Unmarshal([]byte(out), &revs); err != nil {
		r.t.Fatalf("status: %v: %s", err, out)
	}
	return revs
}

// where is the location of a job of the rig's pool, or loc itself when it
// is a location already.
func (r *rig) where(loc string) string {
	if repo.IsRados(loc) || filepath.IsAbs(loc) {
		return loc
	}
	return r.loc(loc)
}

// ids is the sorted ids of revs, joined.
func ids(revs []revInfo) string {
	var s []string
	for _, rev := range revs {
		s = append(s, rev.ID)
	}
	sort.Strings(s)
	return strings.Join(s, ",")
}

func (r *rig) restoreSum(job, id string) string {
	r.t.Helper()
	out := r.must(nil, "backy-restore", "-b", r.where(job), "-r", id, "-")
	sum := sha256.Sum256([]byte(out))
	return hex.EncodeToString(sum[:])
}

// TestKills stores into three jobs of one pool at once, with a purge of
// the pool and a copy running beside them, and kills each with SIGKILL at
// a random moment of its expected run time (at first 2.5 s; then twice
// the longest of the last eight runs of its kind that ended on their own),
// round after round, until at least 30 processes died mid-work. A fixed
// window made the kill count depend on the machine's load: with runs much
// shorter than it, one round in five killed anything. The copy of a round
// is one of: job a to a directory, that directory to job f (directory to
// RADOS), job b to job e (RADOS to RADOS). Then, after the leases ran out, a purge and a verify of every
// job and of the directory pass and every revision of each restores bit
// for bit.
func TestKills(t *testing.T) {
	r := newRig(t, "faults-kills")
	jobs := []string{"a", "b", "c"}
	sums := map[string]string{} // tag -> image SHA-256
	streams := map[string][][]byte{}
	for j, job := range jobs {
		for v := range 2 {
			img, sum := r.image(fmt.Sprintf("%s%d.img", job, v), 4, map[int]byte{j: byte(v + 1), 3: byte(10*j + v + 1)})
			streams[job] = append(streams[job], r.stream(img))
			sums[fmt.Sprintf("%s-v%d", job, v)] = sum
		}
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	want := 30
	if n, err := strconv.Atoi(os.Getenv("BACKY_FAULTS_KILLS")); err == nil && n > 0 {
		want = n
	}
	// every job exists and has a revision before the killing starts
	for _, job := range jobs {
		r.must(streams[job][0], "backy-store", "-b", r.loc(job), "--tags", job+"-v0")
	}
	adir := filepath.Join(r.dir, "adir")
	copies := [][]string{
		{"-b", r.loc("a"), "copy", "--to", adir},
		{"-b", adir, "copy", "--to", r.loc("f")},
		{"-b", r.loc("b"), "copy", "--to", r.loc("e")},
	}
	kills, rounds := 0, 0
	outcomes := map[string]int{}
	ran := map[string][]time.Duration{} // kind -> its last runs that ended on their own
	window := func(kind string) time.Duration {
		if len(ran[kind]) == 0 {
			return 2500 * time.Millisecond
		}
		return max(2*slices.Max(ran[kind]), 100*time.Millisecond)
	}
	for kills < want && rounds < 4*want {
		rounds++
		var procs []*exec.Cmd
		var names []string
		for _, job := range jobs {
			v := rng.IntN(2)
			tag := fmt.Sprintf("%s-v%d", job, v)
			procs = append(procs, r.cmd(streams[job][v], "backy-store", "-b", r.loc(job), "--tags", tag))
			names = append(names, "store")
		}
		procs = append(procs, r.cmd(nil, "backy-store", "-b", r.loc(jobs[rng.IntN(3)]), "purge"))
		names = append(names, "purge")
		if c := copies[rng.IntN(len(copies))]; c[1] != adir || repo.IsRepository(adir) {
			procs = append(procs, r.cmd(nil, "backy-store", c...))
			names = append(names, "copy")
		}
		// each is killed at a random moment of its window, unless it is
		// done by then
		start := time.Now()
		done := make(chan struct{})
		codes := make([]int, len(procs))
		took := make([]time.Duration, len(procs))
		stderrs := make([]bytes.Buffer, len(procs))
		for i, p := range procs {
			p.Stderr = &stderrs[i]
			if err := p.Start(); err != nil {
				t.Fatal(err)
			}
			at := time.Duration(rng.Int64N(int64(window(names[i]))))
			go func() {
				exited := make(chan int, 1)
				go func() { exited <- clitest.ExitCode(t, p.Wait()) }()
				select {
				case codes[i] = <-exited:
					took[i] = time.Since(start)
				case <-time.After(at - time.Since(start)):
					p.Process.Signal(syscall.SIGKILL)
					codes[i] = <-exited
				}
				done <- struct{}{}
			}()
		}
		for range procs {
			<-done
		}
		for i, rc := range codes {
			switch rc {
			case -int(syscall.SIGKILL):
				kills++
				outcomes[names[i]+" killed"]++
			case 0, 5:
				outcomes[fmt.Sprintf("%s exit %d", names[i], rc)]++
				if rc == 0 {
					ran[names[i]] = append(ran[names[i]], took[i])
					if len(ran[names[i]]) > 8 {
						ran[names[i]] = ran[names[i]][1:]
					}
				}
			default:
				t.Fatalf("round %d: %s %s: exit %d (neither success, busy nor killed): %s; so far %v",
					rounds, names[i], strings.Join(procs[i].Args[1:], " "), rc, stderrs[i].String(), outcomes)
			}
		}
	}
	t.Logf("%d rounds, %d kills: %v; last windows: store %v, purge %v, copy %v", rounds, kills, outcomes,
		window("store"), window("purge"), window("copy"))
	if kills < want {
		t.Fatalf("only %d kills in %d rounds", kills, rounds)
	}
	time.Sleep(2500 * time.Millisecond) // the dead holders' leases run out
	// once more each copy, to its end: what the killed ones left is no
	// obstacle
	for _, c := range copies {
		r.must(nil, "backy-store", c...)
	}
	r.must(nil, "backy-store", "-b", r.loc("a"), "purge", "--wait", "10s")
	r.must(nil, "backy-store", "-b", adir, "purge")
	checked := 0
	for _, loc := range []string{r.loc("a"), r.loc("b"), r.loc("c"), adir, r.loc("e"), r.loc("f")} {
		r.must(nil, "backy-store", "-b", loc, "verify")
		for _, rev := range r.revisions(loc) {
			if len(rev.Tags) != 1 || sums[rev.Tags[0]] == "" {
				t.Fatalf("%s: revision %s with tags %v", loc, rev.ID, rev.Tags)
			}
			if got := r.restoreSum(loc, rev.ID); got != sums[rev.Tags[0]] {
				t.Fatalf("%s: revision %s (%s) restores to %s, want %s", loc, rev.ID, rev.Tags[0], got, sums[rev.Tags[0]])
			}
			checked++
		}
	}
	// the copies hold what their sources held
	for _, pair := range [][2]string{{r.loc("a"), adir}, {adir, r.loc("f")}, {r.loc("b"), r.loc("e")}} {
		if from, to := ids(r.revisions(pair[0])), ids(r.revisions(pair[1])); from != to {
			t.Fatalf("%s holds %s, its copy %s holds %s", pair[0], from, pair[1], to)
		}
	}
	if checked == 0 {
		t.Fatal("no revision survived to check")
	}
	t.Logf("%d revisions restored bit for bit", checked)
}

// TestPausedOSD stops the cluster's only OSD with SIGSTOP in the middle of
// a store whose client gives up on an operation after 3 s: the store fails
// with a clear error and publishes nothing; after SIGCONT the next backup
// succeeds and restores bit for bit.
//
// Long mode only (about 50 s). It used to fail in one of two or three
// runs: after SIGCONT every op on the pool stayed "delayed" in the OSD for
// good, a PG read lease that the pause outlasted (see below); 4 of 4 runs
// passed once the lease outlasts the pause.
func TestPausedOSD(t *testing.T) {
	if os.Getenv("BACKY_FAULTS_LONG") == "" {
		t.Skip("about 50 s: runs with BACKY_FAULTS_LONG=1")
	}
	// The read lease of the pool's PGs (Ceph's default: 0.8 x
	// osd_heartbeat_grace, 16 s) must outlast the pause. The OSD's lease
	// clock is monotonic and runs on while the OSD is stopped: resumed after
	// more than the lease, a PG finds itself "laggy" and parks every client
	// op until the lease is renewed, which with a one-OSD acting set can
	// wait for good (the ops stay "delayed" in the OSD log; ceph-container
	// issue 1682, ceph PR 71663). In a real cluster the peers mark a
	// stopped OSD down within the grace and its PGs move on; here there are
	// no peers. Pacific cannot set a pool's read_lease_interval from the
	// command line, so the OSD's default ratio is raised (30 x 20 s) before
	// the pool's PGs exist, and put back afterwards.
	if repo.RadosAvailable {
		conf := cephtest.Start(t)
		setOSD := func(v string) error {
			out, err := exec.Command("ceph", "-c", conf, "tell", "osd.0", "config", "set", "osd_pool_default_read_lease_ratio", v).CombinedOutput()
			if err != nil {
				return fmt.Errorf("ceph tell osd.0 config set osd_pool_default_read_lease_ratio %s: %v: %s", v, err, out)
			}
			return nil
		}
		if err := setOSD("30"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := setOSD("0.8"); err != nil {
				t.Error(err)
			}
		})
	}
	r := newRig(t, "faults-paused", "CEPH_ARGS=--rados_osd_op_timeout=3")
	img, sum := r.image("p.img", 6, nil)
	stream := r.stream(img)
	pidb, err := os.ReadFile(filepath.Join(filepath.Dir(r.conf), "run", "osd.0.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(pidb)))
	if err != nil {
		t.Fatal(err)
	}
	osd, err := os.FindProcess(pid)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { osd.Signal(syscall.SIGCONT) })
	c := r.cmd(nil, "backy-store", "-b", r.loc("p"))
	in, err := c.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var errb bytes.Buffer
	c.Stderr = &errb
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	// half the stream, then the OSD stops, then the rest
	in.Write(stream[:len(stream)/2])
	time.Sleep(500 * time.Millisecond)
	if err := osd.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	in.Write(stream[len(stream)/2:])
	in.Close()
	start := time.Now()
	rc := clitest.ExitCode(t, c.Wait())
	took := time.Since(start)
	if err := osd.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	if rc == 0 || !strings.Contains(errb.String(), "backy-store: error: ") || !strings.Contains(errb.String(), "timed out") {
		t.Fatalf("store with the OSD stopped: exit %d after %s: %s", rc, took, errb.String())
	}
	t.Logf("store with the OSD stopped: exit %d after %s: %s", rc, took.Round(time.Millisecond), strings.TrimSpace(errb.String()))
	time.Sleep(2500 * time.Millisecond) // a lock it could not release runs out
	// The OSD may need a while after SIGCONT before it serves I/O again
	// (the monitor can have marked it down meanwhile): status is retried
	// while it only times out, for at most 90 s.
	rc, out, errs := r.run(nil, "backy-store", "-b", r.loc("p"), "status", "--json")
	for deadline := time.Now().Add(90 * time.Second); rc == 1 && strings.Contains(errs, "timed out") && time.Now().Before(deadline); {
		t.Logf("status after SIGCONT: cluster not serving yet, retrying: %s", strings.TrimSpace(errs))
		time.Sleep(2 * time.Second)
		rc, out, errs = r.run(nil, "backy-store", "-b", r.loc("p"), "status", "--json")
	}
	if rc == 0 {
		if revs := r.revisions("p"); len(revs) != 0 {
			t.Fatalf("a store that failed published %v", revs)
		}
	} else if rc != 6 {
		t.Fatalf("status after the pause: exit %d: %s%s", rc, out, errs)
	}
	// The OSD may need a moment after SIGCONT before it serves I/O again
	// (the monitor can have marked it down meanwhile): the next backup is
	// retried while it only times out, for at most a minute.
	var id string
	for deadline := time.Now().Add(time.Minute); ; {
		rc, out, errs := r.run(stream, "backy-store", "-b", r.loc("p"))
		if rc == 0 {
			id = strings.TrimSpace(out)
			break
		}
		if !strings.Contains(errs, "timed out") || time.Now().After(deadline) {
			t.Fatalf("backup after SIGCONT: exit %d: %s", rc, errs)
		}
		t.Logf("backup after SIGCONT: cluster not serving yet, retrying: %s", strings.TrimSpace(errs))
		time.Sleep(2 * time.Second)
	}
	if got := r.restoreSum("p", id); got != sum {
		t.Fatalf("restore after SIGCONT: %s, want %s", got, sum)
	}
}
