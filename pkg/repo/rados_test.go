//go:build librbd

package repo

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/backy/backy/pkg/rbd/cephtest"
)

func TestMain(m *testing.M) {
	if loc := os.Getenv("BACKY_TEST_HOLD"); loc != "" {
		holdAndWait(loc)
		return
	}
	os.Exit(cephtest.Main(m))
}

// holdAndWait is the child process of TestRadosDeadHolderLeaseExpires:
// it takes the store lock of loc, says so, and waits to be killed.
func holdAndWait(loc string) {
	r, err := Open(loc, WithCeph(Ceph{Conf: os.Getenv("CEPH_CONF")}))
	if err == nil {
		_, err = r.TryLock(LockStore, false)
	}
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	fmt.Println("locked")
	time.Sleep(time.Hour)
}

var poolSeq int

// radosRepo makes a fresh pool on the shared test cluster and opens (or
// creates) job in it.
func radosPool(t *testing.T) (conf, pool string) {
	t.Helper()
	conf = cephtest.Start(t)
	poolSeq++
	pool = cephtest.Pool(t, conf, fmt.Sprintf("repo-%s-%d", strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-")), poolSeq))
	return conf, pool
}

func radosRepo(t *testing.T, conf, pool, job string) *Repo {
	t.Helper()
	r, err := OpenOrCreate(RadosLocation{Pool: pool, Job: job}.String(), WithCeph(Ceph{Conf: conf}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// radosAgain opens r's repository a second time, as another process (its
// own client, its own locks) would.
func radosAgain(t *testing.T, conf string, r *Repo) *Repo {
	t.Helper()
	o, err := Open(r.Location(), WithCeph(Ceph{Conf: conf}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { o.Close() })
	return o
}

func putChunks(t *testing.T, r *Repo, seeds ...byte) []Hash {
	t.Helper()
	b, err := r.Chunks.Begin()
	if err != nil {
		t.Fatal(err)
	}
	var hs []Hash
	for _, s := range seeds {
		data, h := testChunk(s)
		if err := b.Put(h, Compress(nil, data)); err != nil {
			t.Fatal(err)
		}
		hs = append(hs, h)
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	return hs
}

func commitRev(t *testing.T, r *Repo, hs ...Hash) *Revision {
	t.Helper()
	ix := NewIndex(int64(len(hs)) * ChunkSize)
	copy(ix.Hashes, hs)
	rev := &Revision{ID: NewRevisionID(), Time: time.Now().UTC(), Kind: "full", Trust: Trusted, Size: ix.Size}
	if err := r.Commit(rev, ix); err != nil {
		t.Fatal(err)
	}
	return rev
}

func TestRadosRepository(t *testing.T) {
	conf, pool := radosPool(t)
	loc := "rados:" + pool + "/a"
	if _, err := Open(loc, WithCeph(Ceph{Conf: conf})); !errors.Is(err, ErrNotRepository) {
		t.Fatalf("open of a pool without a marker: %v", err)
	}
	if _, err := Open("rados:"+pool, WithCeph(Ceph{Conf: conf})); !errors.Is(err, ErrBadLocation) {
		t.Fatalf("location without a job: %v", err)
	}
	a := radosRepo(t, conf, pool, "a")
	b := radosRepo(t, conf, pool, "b")
	if _, err := Open("rados:"+pool+"/c", WithCeph(Ceph{Conf: conf})); !errors.Is(err, ErrNotRepository) {
		t.Fatalf("open of a missing job: %v", err)
	}

	hs := putChunks(t, a, 1, 2)
	ra := commitRev(t, a, hs[0], hs[1], ZeroHash)
	// b stores one chunk a has and one of its own: dedup across jobs
	putChunks(t, b, 2, 3)
	_, h3 := testChunk(3)
	rb := commitRev(t, b, hs[1], h3)
	n := 0
	if err := a.Chunks.Walk(func(Hash) error { n++; return nil }); err != nil || n != 3 {
		t.Fatalf("%d chunk objects (%v), want 3", n, err)
	}

	for _, c := range []struct {
		r   *Repo
		rev *Revision
	}{{a, ra}, {b, rb}} {
		revs, err := c.r.Revisions()
		if err != nil || len(revs) != 1 || revs[0].ID != c.rev.ID {
			t.Fatalf("%s: revisions %v, %v", c.r.Location(), revs, err)
		}
		ix, err := c.r.Index(c.rev.ID)
		if err != nil {
			t.Fatal(err)
		}
		for i, h := range ix.Hashes {
			if _, err := c.r.ReadChunk(make([]byte, ChunkSize), h); err != nil {
				t.Fatalf("%s chunk %d: %v", c.r.Location(), i, err)
			}
		}
	}

	// damaged metadata is listed as damage of its revision, in id order
	// as a directory lists it (the first is what Revisions reports)
	damaged := []string{"damaged1", "damaged2", "damaged3", "damaged4", "damaged5"}
	for _, id := range damaged {
		if err := a.b.WriteMeta(id, []byte("{")); err != nil {
			t.Fatal(err)
		}
	}
	revs, bad, err := a.ScanRevisions()
	var badIDs []string
	for _, e := range bad {
		badIDs = append(badIDs, DamagedID(e))
	}
	if err != nil || len(revs) != 1 || !slices.Equal(badIDs, damaged) {
		t.Fatalf("scan with damaged metadata: %v, %v (ids %v), %v", revs, bad, badIDs, err)
	}
	ab := a.b.(*radosBackend)
	for _, id := range damaged {
		if ab.io.RmOmapKeys(ab.jobObj(), []string{omapRev + id}) != nil {
			t.Fatal("removing the damaged metadata failed")
		}
	}

	// damage and loss behind backy's back are found on read
	if _, err := cephtest.Rados(conf, []byte("junk"), "-p", pool, "put", "chunk."+hs[0].String(), "-"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.ReadChunk(make([]byte, ChunkSize), hs[0]); !errors.Is(err, ErrCorruptChunk) {
		t.Fatalf("damaged chunk read: %v", err)
	}
	// the next Put of its data replaces it
	putChunks(t, b, 1)
	if _, err := a.ReadChunk(make([]byte, ChunkSize), hs[0]); err != nil {
		t.Fatalf("repaired chunk: %v", err)
	}
	if _, err := cephtest.Rados(conf, nil, "-p", pool, "rm", "chunk."+hs[0].String()); err != nil {
		t.Fatal(err)
	}
	if _, err := a.ReadChunk(make([]byte, ChunkSize), hs[0]); !errors.Is(err, ErrMissingChunk) {
		t.Fatalf("deleted chunk read: %v", err)
	}

	// a removed revision is gone at once; its index stays pending
	if err := a.RemoveRevision(ra.ID); err != nil {
		t.Fatal(err)
	}
	if revs, _ := a.Revisions(); len(revs) != 0 {
		t.Fatalf("revisions after remove: %v", revs)
	}
	if ids, _ := a.OrphanIndexes(); len(ids) != 1 || ids[0] != ra.ID {
		t.Fatalf("orphan indexes %v", ids)
	}
}

func TestRadosLocksAndLeases(t *testing.T) {
	conf, pool := radosPool(t)
	t.Setenv(LeaseEnv, "3s")
	a := radosRepo(t, conf, pool, "a")
	other := radosAgain(t, conf, a)
	l, err := a.TryLock(LockStore, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.TryLock(LockStore, false); !errors.Is(err, ErrBusy) || !strings.Contains(err.Error(), fmt.Sprintf("by pid %d on", os.Getpid())) ||
		!strings.Contains(err.Error(), "a lease of 3s, which ends by itself when its holder dies") {
		t.Fatalf("second store lock: %v", err)
	}
	s1, err := a.TryLock(LockChunks, true)
	if err != nil {
		t.Fatal(err)
	}
	s2, err := other.TryLock(LockChunks, true)
	if err != nil {
		t.Fatalf("second shared lock: %v", err)
	}
	if _, err := other.TryLock(LockChunks, false); !errors.Is(err, ErrBusy) {
		t.Fatalf("exclusive over shared: %v", err)
	}
	s1.Unlock()
	s2.Unlock()
	// held across several lease periods while renewed
	time.Sleep(4 * time.Second)
	if err := l.Held(); err != nil {
		t.Fatalf("renewed lock: %v", err)
	}
	if _, err := other.TryLock(LockStore, false); !errors.Is(err, ErrBusy) {
		t.Fatalf("store lock after a lease period: %v", err)
	}
	// a lock broken behind the holder's back: the holder notices
	rb := a.b.(*radosBackend)
	info, err := rb.io.ListLockers(rb.jobObj(), LockStore)
	if err != nil || len(info.Clients) != 1 {
		t.Fatalf("lockers %+v, %v", info, err)
	}
	if _, err := rb.io.BreakLock(rb.jobObj(), LockStore, info.Clients[0], info.Cookies[0]); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	if err := l.Held(); !errors.Is(err, ErrBusy) || !strings.Contains(err.Error(), "the lease ran out (this process was paused or cut off for longer than its 3s)") {
		t.Fatalf("broken lock still held, or not said so: %v", err)
	}
	l.Unlock()
	l2, err := other.TryLock(LockStore, false)
	if err != nil {
		t.Fatal(err)
	}
	l2.Unlock()
}

// A holder killed with SIGKILL keeps its lock until the lease runs out,
// then loses it without anyone cleaning up.
func TestRadosDeadHolderLeaseExpires(t *testing.T) {
	conf, pool := radosPool(t)
	const lease = 3 * time.Second
	t.Setenv(LeaseEnv, lease.String())
	a := radosRepo(t, conf, pool, "a")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "BACKY_TEST_HOLD="+a.Location(), "CEPH_CONF="+conf)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(out).ReadString('\n')
	if line != "locked\n" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("holder: %q", line)
	}
	if _, err := a.TryLock(LockStore, false); !errors.Is(err, ErrBusy) {
		t.Fatalf("lock of a live holder: %v", err)
	}
	cmd.Process.Kill()
	cmd.Wait()
	killed := time.Now()
	if _, err := a.TryLock(LockStore, false); !errors.Is(err, ErrBusy) {
		t.Fatalf("lock right after the kill: %v", err)
	}
	l, err := a.WaitLock(LockStore, false, 3*lease)
	if err != nil {
		t.Fatalf("lock %s after the kill: %v", time.Since(killed), err)
	}
	defer l.Unlock()
	if d := time.Since(killed); d > lease+2*time.Second {
		t.Fatalf("took %s after the kill, lease %s", d, lease)
	}
}

// Purge of a pool: chunks of every job's revisions and of running stores
// stay; a chunk touched between the sweep's look and its delete stays.
func TestRadosPurge(t *testing.T) {
	conf, pool := radosPool(t)
	t.Setenv(GraceEnv, "0s")
	a := radosRepo(t, conf, pool, "a")
	b := radosRepo(t, conf, pool, "b")
	hs := putChunks(t, a, 1, 2, 3)
	commitRev(t, a, hs[0], hs[1])
	rb := commitRev(t, b, hs[1], hs[2])
	old := putChunks(t, b, 4)[0] // garbage from before the writer below

	// a store of b running: it registered, and wrote chunk 5
	time.Sleep(10 * time.Millisecond)
	w, err := b.TryLock(LockStore, false)
	if err != nil {
		t.Fatal(err)
	}
	young := putChunks(t, b, 5)[0]
	// b's revision is forgotten meanwhile: b is busy, so its index stays
	// marked
	if err := b.RemoveRevision(rb.ID); err != nil {
		t.Fatal(err)
	}
	p, err := a.b.(PoolPurger).PurgePool(t.Context(), PoolPurgeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Jobs != 2 || p.Chunks != 5 || p.Referenced != 3 || p.Removed != 1 || p.Young != 1 || p.Writers != 1 || p.Indexes != 0 {
		t.Fatalf("purge with a writer: %+v", p)
	}
	for _, h := range []Hash{hs[0], hs[1], hs[2], young} {
		if has, _ := a.Chunks.Has(h); !has {
			t.Fatalf("chunk %s removed", h.Short())
		}
	}
	if has, _ := a.Chunks.Has(old); has {
		t.Fatal("old garbage kept")
	}
	w.Unlock()

	// the store is done: b's leftover index and the chunks only it and
	// the store used go
	p, err = a.b.(PoolPurger).PurgePool(t.Context(), PoolPurgeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Writers != 0 || p.Indexes != 1 || p.Removed != 2 || p.Referenced != 2 {
		t.Fatalf("purge after the writer: %+v", p)
	}
	for h, want := range map[Hash]bool{hs[0]: true, hs[1]: true, hs[2]: false, young: false} {
		if has, _ := a.Chunks.Has(h); has != want {
			t.Fatalf("chunk %s there: %v, want %v", h.Short(), has, want)
		}
	}

	// a chunk reused between the sweep's look and its delete is kept
	g := putChunks(t, a, 6)[0]
	time.Sleep(10 * time.Millisecond)
	sweepHook = func(h Hash) {
		if h == g {
			if has, err := b.Chunks.Has(g); !has || err != nil {
				t.Errorf("touch during sweep: %v %v", has, err)
			}
		}
	}
	defer func() { sweepHook = nil }()
	p, err = a.b.(PoolPurger).PurgePool(t.Context(), PoolPurgeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Removed != 0 || p.Young != 1 {
		t.Fatalf("purge racing a touch: %+v", p)
	}
	if has, _ := a.Chunks.Has(g); !has {
		t.Fatal("touched chunk removed")
	}
	// a damaged index makes purge refuse
	ra, _ := a.Revisions()
	if _, err := cephtest.Rados(conf, []byte("junk"), "-p", pool, "put", "index.a."+ra[0].ID, "-"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.b.(PoolPurger).PurgePool(t.Context(), PoolPurgeOptions{}); !errors.Is(err, ErrCorruptIndex) {
		t.Fatalf("purge over a damaged index: %v", err)
	}
}

// A chunk read from RADOS allocates no copy of the stored bytes: a restore
// reads a chunk per 4 MiB, and garbage of that size let its Go heap grow to
// twice its live size. An object too large to be a chunk is corrupt.
func TestRadosReadChunkAllocations(t *testing.T) {
	conf, pool := radosPool(t)
	a := radosRepo(t, conf, pool, "a")
	// incompressible, so that a copy of the stored bytes would be a whole chunk
	data := make([]byte, ChunkSize)
	rand.NewChaCha8([32]byte{1}).Read(data)
	hs := []Hash{HashChunk(data)}
	b, err := a.Chunks.Begin()
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Put(hs[0], Compress(nil, data)); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	dst := make([]byte, ChunkSize)
	if _, err := a.ReadChunk(dst, hs[0]); err != nil { // fills the buffer pool
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	const reads = 20
	for range reads {
		data, err := a.ReadChunk(dst, hs[0])
		if err != nil {
			t.Fatal(err)
		}
		if HashChunk(data) != hs[0] {
			t.Fatal("read chunk differs from the stored one")
		}
	}
	runtime.ReadMemStats(&after)
	if per := (after.TotalAlloc - before.TotalAlloc) / reads; per > 64<<10 {
		t.Errorf("a chunk read allocated %d bytes, want at most 64 KiB", per)
	}

	big := bytes.Repeat([]byte{1}, maxStoredChunk)
	if _, err := cephtest.Rados(conf, big, "-p", pool, "put", "chunk."+hs[0].String(), "-"); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("repo: corrupt chunk %s: object larger than any chunk", hs[0])
	if _, err := a.ReadChunk(dst, hs[0]); !errors.Is(err, ErrCorruptChunk) || err.Error() != want {
		t.Fatalf("read of an oversized object: %v, want %q", err, want)
	}
	if _, err := a.Chunks.Get(hs[0]); !errors.Is(err, ErrCorruptChunk) || err.Error() != want {
		t.Fatalf("get of an oversized object: %v, want %q", err, want)
	}
}

// A RADOS batch writes in the background: a write that fails is reported
// by Commit and by every Put after it, and Commit and Abort return only
// once no write is in flight.
func TestRadosBatchWriteError(t *testing.T) {
	failing := errors.New("injected write failure")
	release := make(chan struct{})
	var mu sync.Mutex
	var wrote []Hash
	radosWrite = func(_ *radosBatch, h Hash, b []byte) error {
		<-release
		mu.Lock()
		defer mu.Unlock()
		wrote = append(wrote, h)
		if b[0] == 'x' {
			return failing
		}
		return nil
	}
	t.Cleanup(func() { radosWrite = (*radosBatch).write })

	be := &radosBackend{}
	b, err := (&radosStore{b: be}).Begin()
	if err != nil {
		t.Fatal(err)
	}
	buf := []byte("x-chunk")
	if err := b.Put(Hash{1}, buf); err != nil {
		t.Fatalf("put: %v", err)
	}
	buf[0] = 'y' // the batch wrote its own copy
	if err := b.Put(Hash{2}, buf); err != nil {
		t.Fatalf("put: %v", err)
	}
	committed := make(chan error)
	go func() { committed <- b.Commit() }()
	select {
	case err := <-committed:
		t.Fatalf("commit returned with writes in flight: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	if err := <-committed; !errors.Is(err, failing) {
		t.Fatalf("commit: %v, want the failed write's error", err)
	}
	if err := b.Put(Hash{3}, buf); !errors.Is(err, failing) {
		t.Fatalf("put after a failed write: %v, want its error", err)
	}
	if len(wrote) != 2 {
		t.Fatalf("%d writes, want 2 (none after the failure was known)", len(wrote))
	}

	// Abort waits too, and so does the backend's Close for a batch left
	// without either
	release = make(chan struct{})
	wrote = nil
	b, _ = (&radosStore{b: be}).Begin()
	if err := b.Put(Hash{4}, []byte("y")); err != nil {
		t.Fatal(err)
	}
	left, _ := (&radosStore{b: be}).Begin()
	if err := left.Put(Hash{5}, []byte("y")); err != nil {
		t.Fatal(err)
	}
	aborted, closable := make(chan struct{}), make(chan struct{})
	go func() { b.Abort(); close(aborted) }()
	go func() { be.writes.Wait(); close(closable) }()
	select {
	case <-aborted:
		t.Fatal("abort returned with a write in flight")
	case <-closable:
		t.Fatal("the backend could close with writes in flight")
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	<-aborted
	<-closable
	if len(wrote) != 2 {
		t.Fatalf("%d writes after abort, want 2", len(wrote))
	}
}

// A store on a host with a full name (backup1.example.com) is a running
// writer to purge: its registration was taken apart at the last '.', the
// writer counted dead, and chunks it wrote before the purge swept under
// it. So is a registration with a dotted cookie, as earlier versions made.
func TestRadosPurgeFullHostName(t *testing.T) {
	conf, pool := radosPool(t)
	t.Setenv(GraceEnv, "0s")
	hostname = func() (string, error) { return "backup1.example.com", nil }
	defer func() { hostname = os.Hostname }()
	a := radosRepo(t, conf, pool, "a")
	b := radosRepo(t, conf, pool, "b.vm")
	w, err := b.TryLock(LockStore, false)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Unlock()
	if strings.Contains(w.cookie, ".") || !strings.HasPrefix(w.cookie, "backup1:") {
		t.Errorf("cookie %q: want the short host name, no '.'", w.cookie)
	}
	mine := putChunks(t, b, 7)[0] // written by the running store, not yet in a revision

	// a writer of job a registered by an earlier version, its lock held
	ab := a.b.(*radosBackend)
	old := "old.example.com:4242:abcdefgh"
	if _, err := ab.io.LockExclusive(ab.jobObj(), LockStore, old, "backy", time.Minute, nil); err != nil {
		t.Fatal(err)
	}
	defer ab.io.Unlock(ab.jobObj(), LockStore, old)
	if err := ab.registerWriter(old, time.Now()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Millisecond)
	p, err := a.b.(PoolPurger).PurgePool(t.Context(), PoolPurgeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Writers != 2 || p.Removed != 0 {
		t.Errorf("purge: %+v; want 2 running writers, nothing removed", p)
	}
	if has, _ := a.Chunks.Has(mine); !has {
		t.Error("the running store's chunk was swept")
	}
	keys, err := ab.io.GetOmapValues(radosMarker, "", omapWriter, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 {
		t.Errorf("writer registrations after the purge: %v, want both", slices.Collect(maps.Keys(keys)))
	}
}

// QuickCheckIndex sees a missing or short index object, as it does an
// index file: status, backy-check and expire rely on it (expire counted a
// revision whose index was gone among a tag's keep, and removed the
// revisions that still restored).
func TestRadosQuickCheckIndex(t *testing.T) {
	conf, pool := radosPool(t)
	r := radosRepo(t, conf, pool, "q")
	hs := putChunks(t, r, 1, 2)
	gone, short, good := commitRev(t, r, hs...), commitRev(t, r, hs...), commitRev(t, r, hs...)
	if _, err := cephtest.Rados(conf, nil, "-p", pool, "rm", "index.q."+gone.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := cephtest.Rados(conf, []byte("short"), "-p", pool, "put", "index.q."+short.ID, "-"); err != nil {
		t.Fatal(err)
	}
	for rev, want := range map[*Revision]string{gone: "is missing", short: "has 5 bytes"} {
		if err := r.QuickCheckIndex(rev); !errors.Is(err, ErrCorruptIndex) || !strings.Contains(err.Error(), want) {
			t.Errorf("revision %s: %v; want ErrCorruptIndex, %q", rev.ID, err, want)
		}
	}
	if err := r.QuickCheckIndex(good); err != nil {
		t.Errorf("intact revision: %v", err)
	}
}

// The pool's list of jobs lives in the marker object. Lost and made again
// by the next store, it listed no job, and the next purge swept every
// chunk of the pool. Now a store lists its job again, and purge marks the
// jobs it finds in the pool but not in the list, and lists them.
func TestRadosPurgeLostMarker(t *testing.T) {
	conf, pool := radosPool(t)
	t.Setenv(GraceEnv, "0s")
	a := radosRepo(t, conf, pool, "a")
	b := radosRepo(t, conf, pool, "b")
	ha := putChunks(t, a, 1, 2)
	hb := putChunks(t, b, 3, 4)
	commitRev(t, a, ha...)
	commitRev(t, b, hb...)
	if _, err := cephtest.Rados(conf, nil, "-p", pool, "rm", radosMarker); err != nil {
		t.Fatal(err)
	}
	a2 := radosRepo(t, conf, pool, "a") // the next store of a
	time.Sleep(10 * time.Millisecond)
	p, err := a2.b.(PoolPurger).PurgePool(t.Context(), PoolPurgeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Jobs != 2 || p.Removed != 0 || !slices.Equal(p.Relisted, []string{"b"}) {
		t.Errorf("purge after the marker was lost: %+v; want 2 jobs, b listed again, nothing removed", p)
	}
	for _, h := range append(ha, hb...) {
		if has, _ := a2.Chunks.Has(h); !has {
			t.Errorf("chunk %s swept", h.Short())
		}
	}
	p, err = a2.b.(PoolPurger).PurgePool(t.Context(), PoolPurgeOptions{})
	if err != nil || p.Jobs != 2 || len(p.Relisted) != 0 {
		t.Errorf("the next purge: %+v, %v; want both jobs listed", p, err)
	}
}

// A pool purge holds a job's store and chunks locks only while it removes
// that job's leftovers, not while it reads the job's indexes: stores and
// restores of every job in the pool failed as busy (exit 5) while it did.
func TestRadosPurgeReleasesJobLocks(t *testing.T) {
	conf, pool := radosPool(t)
	a := radosRepo(t, conf, pool, "a")
	b := radosRepo(t, conf, pool, "b")
	commitRev(t, b, putChunks(t, b, 1)...)
	other := radosAgain(t, conf, b)
	checked := false
	markHook = func(job string) {
		if job != "b" {
			return
		}
		checked = true
		for _, name := range []string{LockChunks, LockStore} {
			l, err := other.TryLock(name, name == LockChunks)
			if err != nil {
				t.Errorf("while purge reads job b's indexes: %v", err)
				continue
			}
			l.Unlock()
		}
	}
	defer func() { markHook = nil }()
	if _, err := a.b.(PoolPurger).PurgePool(t.Context(), PoolPurgeOptions{}); err != nil {
		t.Fatal(err)
	}
	if !checked {
		t.Fatal("purge did not mark job b")
	}
}

// The index of a 12 TiB image (96 MiB) is written and read in pieces: in
// one write Ceph refused it ("Message too long", osd_max_write_size), after
// the whole image had been read.
func TestRadosLargeIndex(t *testing.T) {
	conf, pool := radosPool(t)
	r := radosRepo(t, conf, pool, "huge")
	hs := putChunks(t, r, 9)
	ix := NewIndex(12 << 40)
	ix.Hashes[1000] = hs[0]
	ix.Hashes[len(ix.Hashes)-1] = hs[0]
	rev := &Revision{ID: NewRevisionID(), Time: time.Now().UTC(), Kind: "full", Trust: Trusted, Size: ix.Size}
	if err := r.Commit(rev, ix); err != nil {
		t.Fatal(err)
	}
	if err := r.QuickCheckIndex(rev); err != nil {
		t.Fatal(err)
	}
	got, err := r.Index(rev.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Hashes[1000] != hs[0] || got.Hashes[len(got.Hashes)-1] != hs[0] || !got.Hashes[1001].IsZero() {
		t.Error("the index read back differs")
	}
}
