// Package powercut holds the power-cut tests: the repository code runs
// unchanged on the simulator of internal/powercut, and every cut state the
// model allows must leave a repository that opens, keeps every revision
// committed before the cut bit-exact, holds no half revision, and takes
// the next backup.
package powercut

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	pc "github.com/backy/backy/internal/powercut"
	"github.com/backy/backy/pkg/extent"
	"github.com/backy/backy/pkg/jobstatus"
	"github.com/backy/backy/pkg/repo"
	"github.com/backy/backy/pkg/restore"
	"github.com/backy/backy/pkg/store"
	"github.com/backy/backy/pkg/upkeep"
)

// long is the long mode: ten times the cuts.
var long = os.Getenv("BACKY_FAULTS_LONG") == "1"

// cuts returns how many cuts a test makes: n by default, 10n long, or
// BACKY_POWERCUT_CUTS.
func cuts(n int) int {
	if s := os.Getenv("BACKY_POWERCUT_CUTS"); s != "" {
		if v, err := strconv.Atoi(s); err == nil && v > 0 {
			return v
		}
	}
	if long {
		return 10 * n
	}
	return n
}

// seed returns the run's random seed (BACKY_POWERCUT_SEED to repeat one).
func seed(t *testing.T) uint64 {
	s := uint64(time.Now().UnixNano())
	if v := os.Getenv("BACKY_POWERCUT_SEED"); v != "" {
		s, _ = strconv.ParseUint(v, 10, 64)
	}
	t.Logf("seed %d (BACKY_POWERCUT_SEED=%d repeats this run)", s, s)
	return s
}

// Images are a few chunks of mostly zeros with a little patterned data at
// the start of each chunk: cheap to compress, store, record and restore,
// yet every chunk is distinct.
const imageChunks = 2

var images sync.Map // version -> []byte

// image returns version v (kept: the tests only read it): chunk i holds a 4 KiB pattern that changes in
// version v for the chunks v touches, so consecutive versions share
// chunks (reuse, differential streams) and differ in some. Odd versions
// end half a chunk early (a resize).
func image(v int) []byte {
	if b, ok := images.Load(v); ok {
		return b.([]byte)
	}
	size := imageChunks*repo.ChunkSize + 12345
	switch {
	case v == nextImage:
		size = 100 << 10
	case v%2 == 1:
		size -= repo.ChunkSize / 2
	}
	b := make([]byte, size)
	for i := 0; i < imageChunks+1; i++ {
		last := 0 // the version that last changed chunk i
		for w := 1; w <= v; w++ {
			if w == 1 || (w+i)%3 == 0 {
				last = w
			}
		}
		off := i * repo.ChunkSize
		if off >= size {
			break
		}
		seedBytes := fmt.Appendf(nil, "version %d chunk %d ", last, i)
		p := bytes.Repeat(seedBytes, 4096/len(seedBytes)+1)
		copy(b[off:min(size, off+4096)], p)
	}
	images.Store(v, b)
	return b
}

// nextImage is the small image of the backup each cut's state must take.
const nextImage = 99

// fullStream is a full extent stream of image v (its source names v).
func fullStream(t testing.TB, v int) io.Reader {
	if b, ok := streams.Load(v); ok {
		return bytes.NewReader(b.([]byte))
	}
	img := image(v)
	var buf bytes.Buffer
	w, err := extent.NewWriter(&buf, extent.Header{Kind: extent.Full, Size: int64(len(img)), Source: source(v)})
	if err != nil {
		t.Fatal(err)
	}
	for off := 0; off < len(img); off += repo.ChunkSize {
		end := min(len(img), off+repo.ChunkSize)
		if !isZero(img[off:end]) {
			if err := w.WriteData(int64(off), img[off:end]); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	streams.Store(v, buf.Bytes())
	return bytes.NewReader(buf.Bytes())
}

var streams sync.Map // version -> full stream

// diffStream is a differential stream from image base (revision baseID) to
// image v: only the chunks that differ, and the new size.
func diffStream(t testing.TB, base int, baseID string, v int) io.Reader {
	old, img := image(base), image(v)
	var buf bytes.Buffer
	w, err := extent.NewWriter(&buf, extent.Header{Kind: extent.Differential, Size: int64(len(img)),
		Source: source(v), Base: repo.RevisionBase(baseID)})
	if err != nil {
		t.Fatal(err)
	}
	for off := 0; off < len(img); off += repo.ChunkSize {
		end := min(len(img), off+repo.ChunkSize)
		if end <= len(old) && bytes.Equal(old[off:end], img[off:end]) {
			continue
		}
		if err := w.WriteData(int64(off), img[off:end]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return &buf
}

func source(v int) string { return "image:" + strconv.Itoa(v) }

func isZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// day is the fake clock of the scenario: revision times and expiry.
func day(n int) time.Time { return time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC).AddDate(0, 0, n) }

// revState is what a revision looks like after a step.
type revState struct {
	Source   string
	Trust    string
	Verified bool
	Tags     string
}

func stateOf(rev *repo.Revision) revState {
	return revState{Source: rev.Source, Trust: rev.Trust, Verified: rev.VerifiedAt != nil, Tags: strings.Join(rev.Tags, ",")}
}

// step is one action of a recorded run, with the operations it spans and
// the repository it left.
type step struct {
	num        int // 1 for the first step, 0 for the state before it
	name       string
	start, end int
	revs       map[string]revState // after the step, by repository name and id ("repo/ID")
	status     time.Time           // the status file's Written after the step
}

// run is a recorded scenario: repositories (repo/ unless a test names
// more, as TestPowerCutCopy does) and a daemon status file at
// daemon/status.json on one simulator mount. Every repository is checked
// after every cut.
type run struct {
	t        *testing.T
	sim      *pc.Sim
	repos    []string
	steps    []step
	statuses map[time.Time]bool // every status version ever written (and the first)
}

func (r *run) repoDir() string { return filepath.Join(r.sim.Dir(), r.repos[0]) }

// do runs one step on the mount and records where it starts and ends.
func (r *run) do(name string, fn func() error) {
	r.t.Helper()
	r.doExpect(name, false, fn)
}

// doExpect is do for a step that fails when failing is set.
func (r *run) doExpect(name string, failing bool, fn func() error) {
	r.t.Helper()
	start := r.sim.Ops()
	if err := fn(); (err != nil) != failing {
		r.t.Fatalf("step %s: error %v, want an error: %v", name, err, failing)
	}
	s := step{num: len(r.steps) + 1, name: name, start: start, end: r.sim.Ops(), revs: map[string]revState{}}
	if r.sim.Dead() {
		// The power went during the step: nothing can be read any more,
		// and nothing it did was reported done.
		before, _, _ := r.stepAt(start)
		s.revs, s.status = before.revs, before.status
		r.steps = append(r.steps, s)
		return
	}
	for _, rn := range r.repos {
		rp, err := repo.Open(filepath.Join(r.sim.Dir(), rn))
		if err != nil {
			continue // not made yet
		}
		revs, err := rp.Revisions()
		if err != nil {
			r.t.Fatalf("after step %s: %v", name, err)
		}
		for _, rev := range revs {
			s.revs[rn+"/"+rev.ID] = stateOf(rev)
		}
	}
	st, err := jobstatus.Read(filepath.Join(r.sim.Dir(), "daemon", "status.json"))
	if err != nil {
		r.t.Fatalf("after step %s: %v", name, err)
	}
	s.status = st.Written
	r.steps = append(r.steps, s)
}

func (r *run) store(v int, full bool, now time.Time) {
	r.t.Helper()
	r.storeExpect(v, full, now, false)
}

func (r *run) storeExpect(v int, full bool, now time.Time, failing bool) {
	r.t.Helper()
	r.doExpect(fmt.Sprintf("store %s image %d", map[bool]string{true: "full", false: "differential"}[full], v), failing, func() error {
		rp, err := repo.OpenOrCreate(r.repoDir())
		if err != nil {
			return err
		}
		in := fullStream(r.t, v)
		if !full {
			revs, err := rp.Revisions()
			if err != nil {
				return err
			}
			parent := revs[len(revs)-1]
			base, _ := strconv.Atoi(strings.TrimPrefix(parent.Source, "image:"))
			in = diffStream(r.t, base, parent.ID, v)
		}
		_, err = store.Store(context.Background(), rp, in, store.Options{Tags: []string{"daily"}, Workers: 2, Now: func() time.Time { return now }})
		return err
	})
}

func (r *run) upkeep(name string, fn func(rp *repo.Repo) error) {
	r.t.Helper()
	r.do(name, func() error {
		rp, err := repo.Open(r.repoDir())
		if err != nil {
			return err
		}
		return fn(rp)
	})
}

// forgetOldest is the upkeep step that forgets the oldest revision.
func (r *run) forgetOldest() {
	r.upkeep("forget image 1", func(rp *repo.Repo) error {
		revs, err := rp.Revisions()
		if err != nil {
			return err
		}
		_, err = upkeep.Forget(rp, revs[0].ID, false)
		return err
	})
}

func (r *run) writeStatus(n int) {
	r.t.Helper()
	r.do(fmt.Sprintf("status write %d", n), func() error {
		st := testStatus(n)
		r.statuses[st.Written] = true
		return jobstatus.Write(filepath.Join(r.sim.Dir(), "daemon", "status.json"), st)
	})
}

func testStatus(n int) *jobstatus.Status {
	return &jobstatus.Status{
		Format: jobstatus.Format, Written: day(n), Started: day(0), PID: 4242, Version: "test",
		Jobs: map[string]jobstatus.Job{"vm": {Schedule: "daily", Directory: "/srv/backy/vm", Failures: n, LastResult: "ok"}},
	}
}

// stepAt returns the step in progress after n operations (or the one
// that just ended), and the repository before it.
func (r *run) stepAt(n int) (before, after step, name string) {
	before = step{name: "the start", revs: map[string]revState{}, status: day(0)}
	for _, s := range r.steps {
		if n <= s.start {
			break
		}
		if n < s.end {
			return before, s, "during " + s.name
		}
		before = s
	}
	return before, before, "after " + before.name
}

// tally counts what the cuts found.
type tally struct {
	cuts, lost, half, damaged, stale, statusBad, nextFailed int
	byVariant                                               map[pc.Variant]int
	// Checks that passed, by the digest of what they read; how many
	// restores and verifications actually ran.
	passed                     map[string]bool
	states, restores, verifies int
}

func (c *tally) String() string {
	return fmt.Sprintf("%d power cuts (%v): %d lost revisions, %d half revisions, %d verify failures, %d stale marks, %d bad or stale status files, %d failed next backups (%d distinct repository states checked, %d restores and %d verifications run, the rest already passed on identical bytes)",
		c.cuts, c.byVariant, c.lost, c.half, c.damaged, c.stale, c.statusBad, c.nextFailed, c.states, c.restores, c.verifies)
}

func (c *tally) failures() int {
	return c.lost + c.half + c.damaged + c.stale + c.statusBad + c.nextFailed
}

// check materializes the state of a cut after n operations and checks it
// against the steps; it adds what it found to c and returns one line per
// problem.
func (r *run) check(log *pc.Log, n int, v pc.Variant, rng *rand.Rand, c *tally) []string {
	t := r.t
	st := log.Crash(n, v, rng)
	dir := filepath.Join(t.TempDir(), "crash")
	if err := st.Materialize(dir); err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	before, after, where := r.stepAt(n)
	c.cuts++
	c.byVariant[v]++
	t.Logf("cut %d: %s, %s", c.cuts, st, where) // names the state chosen
	var bad []string
	fail := func(count *int, format string, a ...any) {
		*count++
		bad = append(bad, fmt.Sprintf(format, a...))
	}

	// The status file is one that was written, whole.
	if s, err := jobstatus.Read(filepath.Join(dir, "daemon", "status.json")); err != nil {
		fail(&c.statusBad, "status file: %v", err)
	} else if !r.statuses[s.Written] {
		fail(&c.statusBad, "status file written %s was never written", s.Written)
	} else if s.Written.Before(before.status) {
		fail(&c.statusBad, "status file written %s is older than the last completed write (%s)", s.Written, before.status)
	}

	for _, rn := range r.repos {
		// The check is a function of the repository's bytes and of the
		// steps around the cut: an identical case passed already.
		key := fmt.Sprintf("state %s %d %d", st.Digest(rn), before.num, after.num)
		if c.passed[key] {
			continue
		}
		c.states++
		problems := c.failures()
		r.checkRepo(filepath.Join(dir, rn), rn, before, after, where, c, fail)
		if c.failures() == problems {
			c.passed[key] = true
		}
	}
	return r.report(st, where, bad)
}

// checkRepo checks one repository of a cut's state against the steps
// before and after the cut.
func (r *run) checkRepo(rdir, rn string, before, after step, where string, c *tally, fail func(*int, string, ...any)) {
	t := r.t
	problems := c.failures()
	rp, err := repo.Open(rdir)
	if err != nil {
		if hasRepo(before.revs, rn) || !errors.Is(err, repo.ErrNotRepository) {
			fail(&c.lost, "%s: repository does not open: %v", rn, err)
		}
		return
	}
	// Every metadata file is read, and each must be whole.
	revs, damaged, err := rp.ScanRevisions()
	if err != nil {
		fail(&c.half, "%s: revisions: %v", rn, err)
		return
	}
	for _, err := range damaged {
		fail(&c.half, "%s: %v", rn, err)
	}
	have := map[string]bool{}
	var keys []string // what the revisions' restores depend on
	for _, rev := range revs {
		id := rn + "/" + rev.ID
		have[id] = true
		old, inOld := before.revs[id]
		nw, inNew := after.revs[id]
		if !inOld && !inNew {
			fail(&c.half, "revision %s (%s) is neither in the repository before nor after %s", id, rev.Source, where)
			continue
		}
		if s := stateOf(rev); (!inOld || s != old) && (!inNew || s != nw) {
			fail(&c.stale, "revision %s is %+v; before: %+v, after: %+v", id, s, old, nw)
		}
		key, err := revisionKey(rp, rev)
		if err == nil && !c.passed[key] {
			c.restores++
			if err = restoresTo(rp, rev); err == nil {
				c.passed[key] = true
			}
		}
		if err != nil {
			fail(&c.half, "revision %s (%s): %v", id, rev.Source, err)
		}
		keys = append(keys, key)
	}
	for id, s := range before.revs {
		if _, kept := after.revs[id]; kept && strings.HasPrefix(id, rn+"/") && !have[id] {
			fail(&c.lost, "revision %s (%s) committed before the cut is gone", id, s.Source)
		}
	}
	if c.failures() > problems {
		return
	}
	// Verify finds nothing wrong; the next backup works and restores;
	// purge removes the leftovers.
	if key := "verify " + strings.Join(keys, " "); !c.passed[key] {
		c.verifies++
		if _, err := upkeep.Verify(context.Background(), rp, upkeep.VerifyOptions{Selection: upkeep.Selection{All: true}}); err != nil {
			fail(&c.damaged, "%s: verify: %v", rn, err)
		} else {
			c.passed[key] = true
		}
	}
	rev, err := store.Store(context.Background(), rp, fullStream(t, nextImage), store.Options{Now: func() time.Time { return day(30) }})
	if err == nil {
		err = restoresTo(rp, rev)
	}
	if err == nil {
		_, err = upkeep.Purge(context.Background(), rp, upkeep.PurgeOptions{})
	}
	if err != nil {
		fail(&c.nextFailed, "%s: next backup: %v", rn, err)
	}
}

func hasRepo(revs map[string]revState, rn string) bool {
	for id := range revs {
		if strings.HasPrefix(id, rn+"/") {
			return true
		}
	}
	return false
}

func (r *run) report(st *pc.State, where string, bad []string) []string {
	if len(bad) == 0 {
		return nil
	}
	return append([]string{fmt.Sprintf("%s, %s", st, where)}, bad...)
}

// revisionKey digests every byte a restore of rev reads: its metadata,
// its index and the chunk files the index names. Restore and verify are
// functions of these bytes, so a check that passed on the same key is not
// run again (most cuts share most revisions).
func revisionKey(rp *repo.Repo, rev *repo.Revision) (string, error) {
	ix, err := rp.Index(rev.ID)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	for _, ext := range []string{".rev", ".idx"} {
		b, err := os.ReadFile(filepath.Join(rp.Dir, "revisions", rev.ID+ext))
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s %d\n", ext, len(b))
		h.Write(b)
	}
	for _, c := range ix.Hashes {
		if c.IsZero() {
			continue
		}
		name := c.String()
		b, err := os.ReadFile(filepath.Join(rp.Dir, "chunks", name[:2], name))
		fmt.Fprintf(h, "%s %d %v\n", name, len(b), err != nil)
		h.Write(b)
	}
	return fmt.Sprintf("%x", h.Sum(nil)), nil
}

// restoresTo checks that a revision restores to the image its source names.
func restoresTo(rp *repo.Repo, rev *repo.Revision) error {
	v, err := strconv.Atoi(strings.TrimPrefix(rev.Source, "image:"))
	if err != nil {
		return fmt.Errorf("source %q", rev.Source)
	}
	ix, err := rp.Index(rev.ID)
	if err != nil {
		return err
	}
	cmp := &comparer{want: image(v)}
	if err := restore.Raw(context.Background(), rp, rev, ix, cmp, restore.Options{Workers: 2}); err != nil {
		return err
	}
	if cmp.differ || len(cmp.want) != 0 {
		return fmt.Errorf("restores to other bytes than image %d", v)
	}
	return nil
}

// comparer is a writer that checks what it is given against want.
type comparer struct {
	want   []byte
	differ bool
}

func (c *comparer) Write(p []byte) (int, error) {
	if len(p) > len(c.want) || !bytes.Equal(p, c.want[:len(p)]) {
		c.differ = true
		c.want = nil
		return len(p), nil
	}
	c.want = c.want[len(p):]
	return len(p), nil
}

// newRun mounts a simulator over a scratch directory holding the first
// status file (durable before the run).
func newRun(t *testing.T) *run {
	backing := t.TempDir()
	if err := os.Mkdir(filepath.Join(backing, "daemon"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := jobstatus.Write(filepath.Join(backing, "daemon", "status.json"), testStatus(0)); err != nil {
		t.Fatal(err)
	}
	return &run{t: t, sim: pc.Mount(t, backing), repos: []string{"repo"}, statuses: map[time.Time]bool{day(0): true}}
}

// cutPoints chooses n cut points over a log: the end of every step (what
// was reported done must survive), then half at random operations and
// half right before or after a directory change or an fsync.
func (r *run) cutPoints(log *pc.Log, n int, rng *rand.Rand) []int {
	var points []int
	for _, s := range r.steps {
		points = append(points, s.end)
	}
	var marks []int
	for i, op := range log.Ops {
		if op.IsMeta() || op.Kind == pc.Fsync || op.Kind == pc.FsyncDir {
			marks = append(marks, i, i+1)
		}
	}
	for len(points) < n {
		if rng.IntN(2) == 0 || len(marks) == 0 {
			points = append(points, 1+rng.IntN(len(log.Ops)))
		} else {
			points = append(points, marks[rng.IntN(len(marks))])
		}
	}
	return points
}

// cutAll cuts the recorded run at n points, each in the next variant, and
// fails the test on any lost or half revision.
func (r *run) cutAll(n int, rng *rand.Rand) {
	t := r.t
	log := r.sim.Log()
	c := &tally{byVariant: map[pc.Variant]int{}, passed: map[string]bool{}}
	t0 := time.Now()
	for i, p := range r.cutPoints(log, n, rng) {
		v := pc.Variants[i%len(pc.Variants)]
		if i < len(r.steps) {
			v = pc.Strict // the ends of steps: only what was made durable
		}
		if bad := r.check(log, p, v, rng, c); bad != nil {
			t.Errorf("cut %d: %s", i, strings.Join(bad, "\n\t"))
		}
	}
	t.Logf("%d operations recorded over %d steps; %s; %.1fs", len(log.Ops), len(r.steps), c, time.Since(t0).Seconds())
	if c.failures() > 0 {
		t.Errorf("power cuts found %d problems", c.failures())
	}
}

// TestPowerCutRepository records stores (full and differential), status
// file writes, distrust, verify marks, forget, expire and purge on one
// repository, then cuts the run at hundreds of points.
func TestPowerCutRepository(t *testing.T) {
	rng := rand.New(rand.NewPCG(seed(t), 17))
	r := newRun(t)
	r.store(1, true, day(1))
	r.writeStatus(1)
	r.store(2, false, day(2))
	r.store(3, true, day(3))
	r.upkeep("distrust image 2", func(rp *repo.Repo) error {
		_, err := upkeep.Distrust(rp, upkeep.Selection{Spec: "1"})
		return err
	})
	r.writeStatus(2)
	r.upkeep("verify", func(rp *repo.Repo) error {
		_, err := upkeep.Verify(context.Background(), rp, upkeep.VerifyOptions{Selection: upkeep.Selection{All: true}, Options: upkeep.Options{Now: func() time.Time { return day(3) }}})
		return err
	})
	r.store(4, true, day(4))
	r.forgetOldest()
	r.upkeep("expire", func(rp *repo.Repo) error {
		s, err := upkeep.ParseSchedule("daily=1d:2")
		if err != nil {
			return err
		}
		_, err = upkeep.Expire(rp, s, false, upkeep.Options{Now: func() time.Time { return day(5) }})
		return err
	})
	r.upkeep("purge", func(rp *repo.Repo) error {
		_, err := upkeep.Purge(context.Background(), rp, upkeep.PurgeOptions{})
		return err
	})
	r.writeStatus(3)
	r.store(5, false, day(5))
	r.store(6, true, day(6))
	if got := len(r.steps[len(r.steps)-1].revs); got < 3 {
		t.Fatalf("the scenario ends with %d revisions; it should keep at least 3", got)
	}
	r.cutAll(cuts(150), rng)
}

// TestPowerCutCopy records copies (issue 12) from one repository into a
// new one and on into a third, between stores, distrust and verify marks,
// then cuts the run: every repository must hold exactly the revisions
// (with their tags and trust) it had before or after the step in progress,
// each restoring bit for bit, and take the next backup. A copy cut at any
// point leaves its target valid.
func TestPowerCutCopy(t *testing.T) {
	rng := rand.New(rand.NewPCG(seed(t), 20))
	r := newRun(t)
	r.repos = append(r.repos, "copy", "back")
	copyTo := func(from, to string, specs ...string) {
		r.do(fmt.Sprintf("copy %s to %s %v", from, to, specs), func() error {
			src, err := repo.Open(filepath.Join(r.sim.Dir(), from))
			if err != nil {
				return err
			}
			dst, err := repo.OpenOrCreate(filepath.Join(r.sim.Dir(), to))
			if err != nil {
				return err
			}
			_, err = upkeep.Copy(context.Background(), src, dst, upkeep.CopyOptions{Options: upkeep.Options{Workers: 2}, Specs: specs})
			return err
		})
	}
	r.store(1, true, day(1))
	r.store(2, false, day(2))
	r.upkeep("distrust image 1", func(rp *repo.Repo) error {
		_, err := upkeep.Distrust(rp, upkeep.Selection{Spec: "1"})
		return err
	})
	copyTo("repo", "copy")
	r.store(3, true, day(3))
	copyTo("repo", "copy")
	copyTo("copy", "back", "latest")
	r.upkeep("verify", func(rp *repo.Repo) error {
		_, err := upkeep.Verify(context.Background(), rp, upkeep.VerifyOptions{Selection: upkeep.Selection{All: true}, Options: upkeep.Options{Now: func() time.Time { return day(3) }}})
		return err
	})
	copyTo("repo", "back")
	last := r.steps[len(r.steps)-1].revs
	if n := len(last); n != 9 {
		t.Fatalf("the scenario ends with %d revisions in its 3 repositories, want 3 in each: %v", n, last)
	}
	r.cutAll(cuts(60), rng)
}

// The repository's fsyncs reach the simulator: every chunk, index and
// metadata file of a store and the directories they go into are synced,
// and so is the daemon's status file.
func TestStoreFsyncsReachSimulator(t *testing.T) {
	r := newRun(t)
	r.store(1, true, day(1))
	r.writeStatus(1)
	if n, err := r.sim.Fsyncs("daemon/status.json"); err != nil || n == 0 {
		t.Errorf("daemon/status.json: %d fsyncs (%v), want at least one", n, err)
	}
	rd := "repo"
	files := append(r.sim.Files(filepath.Join(rd, "chunks")), r.sim.Files(filepath.Join(rd, "revisions"))...)
	if len(files) < imageChunks+2 {
		t.Fatalf("%d files under chunks/ and revisions/, want at least %d", len(files), imageChunks+2)
	}
	dirs := map[string]bool{filepath.Join(rd, "chunks"): true, filepath.Join(rd, "revisions"): true}
	for _, f := range files {
		n, err := r.sim.Fsyncs(f)
		if err != nil || n == 0 {
			t.Errorf("%s: %d fsyncs (%v), want at least one", f, n, err)
		}
		dirs[filepath.Dir(f)] = true
	}
	for _, d := range slices.Sorted(maps.Keys(dirs)) {
		if n, err := r.sim.Fsyncs(d); err != nil || n == 0 {
			t.Errorf("directory %s: %d fsyncs (%v), want at least one", d, n, err)
		}
	}
}

// A restore to a file makes the file and its rename into place durable:
// both the file and its directory are synced.
func TestRestoreFsyncsReachSimulator(t *testing.T) {
	r := newRun(t)
	r.store(1, true, day(1))
	if err := os.Mkdir(filepath.Join(r.sim.Dir(), "out"), 0o755); err != nil {
		t.Fatal(err)
	}
	rp, err := repo.Open(r.repoDir())
	if err != nil {
		t.Fatal(err)
	}
	rev, err := rp.Find("latest")
	if err != nil {
		t.Fatal(err)
	}
	ix, err := rp.Index(rev.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := restore.ToPath(context.Background(), rp, rev, ix, filepath.Join(r.sim.Dir(), "out", "vm.img"), restore.Options{Workers: 2}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"out/vm.img", "out"} {
		if n, err := r.sim.Fsyncs(p); err != nil || n == 0 {
			t.Errorf("%s: %d fsyncs (%v), want at least one", p, n, err)
		}
	}
}

// A store that fails after its chunks are in chunks/ but before they are
// durable (here: the fsync of a chunk directory fails, as it would for a
// store killed at that moment) leaves chunks the next store finds and
// reuses. The next store's revision must not depend on entries nobody
// made durable.
func TestPowerCutAfterFailedStore(t *testing.T) {
	for _, target := range []string{"a new chunk directory", "chunks/"} {
		t.Run(strings.ReplaceAll(target, "/", ""), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed(t), 18))
			r := newRun(t)
			r.store(1, true, day(1))
			failed := false
			r.sim.Fail(func(op pc.Op) bool {
				hit := !failed && op.Kind == pc.FsyncDir && (op.Path == "repo/chunks") == (target == "chunks/") &&
					strings.HasPrefix(op.Path, "repo/chunks")
				failed = failed || hit
				return hit
			})
			r.storeExpect(2, true, day(2), true)
			r.sim.Fail(nil)
			if !failed {
				t.Fatalf("the store of image 2 synced no chunk directory")
			}
			r.store(2, true, day(2))
			r.cutAll(cuts(20), rng)
		})
	}
}

// A small run (the store that creates the repository, a differential
// store, forget) cut after every one of its operations, in the strict and
// in the newest-only state (every state, long): the latter finds code that
// relies on one unsynced directory change reaching the disk before another.
func TestPowerCutEveryOperation(t *testing.T) {
	rng := rand.New(rand.NewPCG(seed(t), 19))
	r := newRun(t)
	r.store(1, true, day(1))
	r.store(2, false, day(2))
	r.forgetOldest()
	log := r.sim.Log()
	c := &tally{byVariant: map[pc.Variant]int{}, passed: map[string]bool{}}
	variants := []pc.Variant{pc.Strict, pc.NewestOnly}
	if long {
		variants = pc.Variants
	}
	for n := 1; n <= len(log.Ops); n++ {
		for _, v := range variants {
			if bad := r.check(log, n, v, rng, c); bad != nil {
				t.Errorf("%s", strings.Join(bad, "\n\t"))
			}
		}
	}
	t.Logf("%d operations recorded over %d steps; %s", len(log.Ops), len(r.steps), c)
	if c.failures() > 0 {
		t.Errorf("power cuts found %d problems", c.failures())
	}
}

// Creating a repository, cut after every operation with every subset of
// the unsynced directory changes kept: once the repository's marker file
// is there, the repository opens and takes a backup; before, OpenOrCreate
// finishes it and it takes a backup.
func TestPowerCutCreateRepository(t *testing.T) {
	r := newRun(t)
	r.do("create the repository", func() error {
		_, err := repo.OpenOrCreate(r.repoDir())
		return err
	})
	log := r.sim.Log()
	states, checked := 0, map[string]bool{}
	for n := 1; n <= len(log.Ops); n++ {
		un := log.Unsynced(n)
		if len(un) > 12 {
			t.Fatalf("%d unsynced directory changes after op %d: too many subsets", len(un), n)
		}
		for mask := 0; mask < 1<<len(un); mask++ {
			st := log.CrashKeeping(n, func(i int) bool {
				b, _ := slices.BinarySearch(un, i)
				return mask&(1<<b) != 0
			})
			states++
			// The states differ, for a store, in which of these exist.
			var key strings.Builder
			for _, p := range []string{"backy-repository", "chunks", "revisions", "tmp", "locks"} {
				fmt.Fprintf(&key, "%s=%v ", p, st.Exists("repo/"+p))
			}
			_, marked := st.File("repo/backy-repository")
			if checked[key.String()] {
				continue
			}
			checked[key.String()] = true
			dir := filepath.Join(t.TempDir(), "crash")
			if err := st.Materialize(dir); err != nil {
				t.Fatal(err)
			}
			// without the marker, the next OpenOrCreate finishes the
			// repository (a store or copy to it after the cut)
			open := repo.Open
			if !marked {
				open = func(dir string, opts ...repo.Option) (*repo.Repo, error) { return repo.OpenOrCreate(dir, opts...) }
			}
			rp, err := open(filepath.Join(dir, "repo"))
			if err == nil {
				_, err = store.Store(context.Background(), rp, fullStream(t, nextImage), store.Options{})
			}
			if err != nil {
				t.Errorf("%s (%s): %v", st, key.String(), err)
			}
		}
	}
	t.Logf("%d operations, %d crash states, %d distinct ones stored into", len(log.Ops), states, len(checked))
}

// Cutting the power live, during a store: the store fails (every
// operation after the cut is EIO), nothing hangs, and the state the log
// gives for that moment passes the checks.
func TestPowerCutLive(t *testing.T) {
	rng := rand.New(rand.NewPCG(seed(t), 20))
	for i := range 5 {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			r := newRun(t)
			r.store(1, true, day(1))
			cut := r.sim.Ops() + 1 + rng.IntN(20) // a store of image 3 makes 31; its commit is at the 29th
			r.sim.CutAfter(cut)
			r.storeExpect(3, true, day(3), true)
			log := r.sim.Log()
			if len(log.Ops) != cut {
				t.Fatalf("%d operations recorded, want the %d before the cut", len(log.Ops), cut)
			}
			c := &tally{byVariant: map[pc.Variant]int{}, passed: map[string]bool{}}
			for _, v := range pc.Variants {
				if bad := r.check(log, cut, v, rng, c); bad != nil {
					t.Errorf("%s", strings.Join(bad, "\n\t"))
				}
			}
		})
	}
}
