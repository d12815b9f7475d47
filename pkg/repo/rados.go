//go:build librbd

package repo

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/backy/backy/pkg/cephconn"
	"github.com/ceph/go-ceph/rados"
	"golang.org/x/sys/unix"
)

// The objects of a RADOS repository (docs/repository.md, "RADOS"). Every
// job of a pool shares the marker and the chunks; a job has its job object
// and one index object per revision.
const (
	radosMarker      = configFile        // format marker; omap: job.NAME, writer.NAME.COOKIE
	radosChunkPrefix = "chunk."          // chunk.HASH: one stored chunk
	radosJobPrefix   = "job."            // job.NAME: omap rev.ID (metadata), pending.ID; the job's locks
	radosIndexPrefix = "index."          // index.NAME.ID: a revision's index
	radosTouched     = "backy.touched"   // chunk xattr: when it was last written or reused (unix ns)
	omapRev          = "rev."            // job omap: published revision metadata
	omapPending      = "pending."        // job omap: an index that may exist without metadata
	omapJob          = "job."            // marker omap: the jobs of the pool
	omapWriter       = "writer."         // marker omap: running stores (writer.JOB.COOKIE = start)
	maxStoredChunk   = ChunkSize + 1<<20 // more than any zstd frame of one chunk
)

func lease() time.Duration {
	if d, err := time.ParseDuration(os.Getenv(LeaseEnv)); err == nil && d >= time.Second {
		return d
	}
	return DefaultLease
}

// RadosAvailable reports whether this build has the RADOS backend.
const RadosAvailable = true

type radosBackend struct {
	loc    RadosLocation
	conn   *rados.Conn
	io     *rados.IOContext
	chunks *radosStore
	lease  time.Duration
	fence  storeFence // the store lock the publish asserts (rados_fence.go)
	// writes counts the background chunk writes of every batch, so that
	// Close never destroys the I/O context under one (a batch left
	// without Commit or Abort).
	writes sync.WaitGroup
}

func openRados(loc string, o openOptions, create bool) (*Repo, error) {
	l, err := ParseRadosLocation(loc)
	if err != nil {
		return nil, err
	}
	conn, err := cephconn.Connect(o.ctx, o.ceph)
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			conn.Shutdown()
		}
	}()
	io, err := conn.OpenIOContext(l.Pool)
	if errors.Is(err, rados.ErrNotFound) {
		return nil, fmt.Errorf("%w: %s: no pool %s", ErrNotRepository, loc, l.Pool)
	}
	if err != nil {
		return nil, fmt.Errorf("repo: %s: pool %s: %w", loc, l.Pool, err)
	}
	b := &radosBackend{loc: l, conn: conn, io: io, lease: lease()}
	b.chunks = &radosStore{b: b}
	created, err := b.open(create)
	if err != nil {
		io.Destroy()
		return nil, err
	}
	ok = true
	r := newRepo(b, "")
	r.created = created
	return r, nil
}

// open checks the pool's format marker and the job, creating what is
// missing when create is set; it reports whether it created the job.
func (b *radosBackend) open(create bool) (bool, error) {
	where := b.loc.Pool + "/" + radosMarker
	cfg, err := b.readAll(radosMarker, 1<<16)
	if errors.Is(err, fs.ErrNotExist) && create {
		op := rados.CreateWriteOp()
		op.Create(rados.CreateExclusive)
		op.WriteFull(newConfig())
		err = op.Operate(b.io, radosMarker, rados.OperationNoFlag)
		op.Release()
		if err != nil && !errors.Is(err, rados.ErrObjectExists) {
			return false, fmt.Errorf("repo: create %s: %w", where, err)
		}
		cfg, err = b.readAll(radosMarker, 1<<16)
	}
	if errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("%w: pool %s has no %s object", ErrNotRepository, b.loc.Pool, radosMarker)
	}
	if err != nil {
		return false, err
	}
	format, err := checkConfig(cfg, "rados:"+where)
	if err != nil {
		return false, err
	}
	if format != FormatVersion {
		return false, fmt.Errorf("%w: rados:%s has format %d; a pool has format %d from the start", ErrFormat, where, format, FormatVersion)
	}
	_, err = b.io.Stat(b.jobObj())
	if err == nil {
		if create {
			// A writer lists its job again: a lost marker object comes
			// back empty, and purge marks only what the list holds
			// (it also marks job objects it finds unlisted).
			if err := b.io.SetOmap(radosMarker, map[string][]byte{omapJob + b.loc.Job: nil}); err != nil {
				return false, fmt.Errorf("repo: %s: %w", b.loc, err)
			}
		}
		return false, nil
	}
	if !errors.Is(err, rados.ErrNotFound) {
		return false, fmt.Errorf("repo: %s: %w", b.loc, err)
	}
	if !create {
		return false, fmt.Errorf("%w: %s: no job %s in pool %s", ErrNotRepository, b.loc, b.loc.Job, b.loc.Pool)
	}
	// The marker lists the job first, so that a purge that sees the job
	// object also finds it in the list.
	if err := b.io.SetOmap(radosMarker, map[string][]byte{omapJob + b.loc.Job: nil}); err != nil {
		return false, fmt.Errorf("repo: %s: %w", b.loc, err)
	}
	op := rados.CreateWriteOp()
	defer op.Release()
	op.Create(rados.CreateExclusive)
	err = op.Operate(b.io, b.jobObj(), rados.OperationNoFlag)
	if errors.Is(err, rados.ErrObjectExists) {
		return false, nil // made by another store at the same moment
	}
	if err != nil {
		return false, fmt.Errorf("repo: create %s: %w", b.loc, err)
	}
	return true, nil
}

// indexSize is the size of a revision's index object (QuickCheckIndex):
// status, backy-check and expire see a missing or short index as the
// directory backend's do.
func (b *radosBackend) indexSize(id string) (int64, error) {
	st, err := b.io.Stat(b.indexObj(id))
	if err != nil {
		return 0, radosErr(b.indexObj(id), err)
	}
	return int64(st.Size), nil
}

var _ indexSizer = (*radosBackend)(nil)

func (b *radosBackend) jobObj() string            { return radosJobPrefix + b.loc.Job }
func (b *radosBackend) indexObj(id string) string { return radosIndexPrefix + b.loc.Job + "." + id }
func chunkObj(h Hash) string                      { return radosChunkPrefix + h.String() }

func (b *radosBackend) objName(id, ext string) string {
	if ext == ".idx" {
		return "rados:" + b.loc.Pool + "/" + b.indexObj(id)
	}
	return "rados:" + b.loc.Pool + "/" + b.jobObj() + " omap " + omapRev + id
}

// cluster is the fsid of the cluster (SameRepository).
func (b *radosBackend) cluster() string {
	id, _ := b.conn.GetFSID()
	return id
}

func (b *radosBackend) Location() string   { return b.loc.String() }
func (b *radosBackend) Chunks() ChunkStore { return b.chunks }

func (b *radosBackend) Close() error {
	b.writes.Wait()
	b.io.Destroy()
	b.conn.Shutdown()
	return nil
}

// radosErr wraps a librados error; a missing object becomes fs.ErrNotExist.
func radosErr(what string, err error) error {
	if errors.Is(err, rados.ErrNotFound) {
		return fmt.Errorf("repo: %s: %w", what, fs.ErrNotExist)
	}
	return fmt.Errorf("repo: %s: %w", what, err)
}

// readAll reads a whole object of at most max bytes.
func (b *radosBackend) readAll(oid string, max int) ([]byte, error) {
	st, err := b.io.Stat(oid)
	if err != nil {
		return nil, radosErr(oid, err)
	}
	if st.Size > uint64(max) {
		return nil, fmt.Errorf("repo: %s: %d bytes, more than %d", oid, st.Size, max)
	}
	buf := make([]byte, st.Size)
	n := 0
	for n < len(buf) {
		m, err := b.io.Read(oid, buf[n:min(n+radosPiece, len(buf))], uint64(n))
		if err != nil {
			return nil, radosErr(oid, err)
		}
		if m == 0 {
			break // shorter than its stat said: the caller checks the length
		}
		n += m
	}
	return buf[:n], nil
}

// radosPiece bounds one read or write of a large object (an index takes
// 8 MiB per TiB of image): Ceph refuses a write larger than
// osd_max_write_size (90 MB by default), so the index of an image over
// about 11 TiB could not be written in one.
const radosPiece = 32 << 20

// omap returns the job object's omap entries under prefix.
func (b *radosBackend) omap(prefix string) (map[string][]byte, error) {
	m, err := b.io.GetAllOmapValues(b.jobObj(), "", prefix, 1000)
	if err != nil {
		return nil, radosErr(b.jobObj(), err)
	}
	return m, nil
}

func (b *radosBackend) RevisionIDs() ([]string, error) {
	m, err := b.listMeta()
	return slices.Collect(maps.Keys(m)), err
}

// listMeta returns every revision's metadata in one read (Repo.ScanRevisions).
func (b *radosBackend) listMeta() (map[string][]byte, error) {
	m, err := b.omap(omapRev)
	if err != nil {
		return nil, err
	}
	out := make(map[string][]byte, len(m))
	for k, v := range m {
		out[strings.TrimPrefix(k, omapRev)] = v
	}
	return out, nil
}

func (b *radosBackend) ReadMeta(id string) ([]byte, error) {
	op := rados.CreateReadOp()
	defer op.Release()
	step := op.GetOmapValuesByKeys([]string{omapRev + id})
	if err := op.Operate(b.io, b.jobObj(), rados.OperationNoFlag); err != nil {
		return nil, radosErr(b.jobObj(), err)
	}
	kv, err := step.Next()
	if err != nil {
		return nil, radosErr(b.jobObj(), err)
	}
	if kv == nil {
		return nil, fmt.Errorf("repo: %s: %w", b.objName(id, ".rev"), fs.ErrNotExist)
	}
	return kv.Value, nil
}

// WriteMeta publishes metadata in one operation on the job object, which
// also drops the pending mark that WriteIndex set.
func (b *radosBackend) WriteMeta(id string, m []byte) error {
	op := rados.CreateWriteOp()
	defer op.Release()
	op.AssertExists()
	fenced := b.fence.assert(op)
	op.SetOmap(map[string][]byte{omapRev + id: m})
	op.RmOmapKeys([]string{omapPending + id})
	if err := op.Operate(b.io, b.jobObj(), rados.OperationNoFlag); err != nil {
		if fenced && lockRefused(err) {
			return b.lostStoreLock("the publish of revision " + id)
		}
		return radosErr(b.jobObj(), err)
	}
	return nil
}

func (b *radosBackend) ReadIndex(id string) ([]byte, error) {
	return b.readAll(b.indexObj(id), maxIndexLen)
}

// WriteIndex marks the index pending on the job object before writing it,
// so that an index a crash leaves without metadata is found without
// listing the pool.
func (b *radosBackend) WriteIndex(id string, ix []byte) error {
	if err := b.setPending(id); err != nil {
		return err
	}
	oid := b.indexObj(id)
	for off := 0; off == 0 || off < len(ix); off += radosPiece {
		p := ix[off:min(off+radosPiece, len(ix))]
		var err error
		if off == 0 {
			err = b.io.WriteFull(oid, p)
		} else {
			err = b.io.Write(oid, p, uint64(off))
		}
		if err != nil {
			return radosErr(oid, err)
		}
	}
	return nil
}

func (b *radosBackend) setPending(id string) error {
	op := rados.CreateWriteOp()
	defer op.Release()
	op.AssertExists()
	op.SetOmap(map[string][]byte{omapPending + id: nil})
	if err := op.Operate(b.io, b.jobObj(), rados.OperationNoFlag); err != nil {
		return radosErr(b.jobObj(), err)
	}
	return nil
}

// RemoveRevision drops the metadata and marks the index pending in one
// operation, so the revision stops existing at once. The index object
// stays until purge removes it as a leftover: a store still building on
// this revision, or a reader of it, keeps its chunks until then.
func (b *radosBackend) RemoveRevision(id string) error {
	op := rados.CreateWriteOp()
	defer op.Release()
	op.AssertExists()
	op.RmOmapKeys([]string{omapRev + id})
	op.SetOmap(map[string][]byte{omapPending + id: nil})
	if err := op.Operate(b.io, b.jobObj(), rados.OperationNoFlag); err != nil {
		return radosErr(b.jobObj(), err)
	}
	return nil
}

func (b *radosBackend) OrphanIndexes() ([]string, error) {
	m, err := b.omap("")
	if err != nil {
		return nil, err
	}
	var ids []string
	for k := range m {
		if id, ok := strings.CutPrefix(k, omapPending); ok {
			if _, pub := m[omapRev+id]; !pub {
				ids = append(ids, id)
			}
		}
	}
	return ids, nil
}

func (b *radosBackend) FindLeftovers() (Leftovers, error) {
	ids, err := b.OrphanIndexes()
	return Leftovers{Indexes: ids}, err
}

func (b *radosBackend) RemoveLeftovers(l Leftovers) error {
	for _, id := range l.Indexes {
		if err := b.io.Delete(b.indexObj(id)); err != nil && !errors.Is(err, rados.ErrNotFound) {
			return radosErr(b.indexObj(id), err)
		}
	}
	if len(l.Indexes) == 0 {
		return nil
	}
	keys := make([]string, len(l.Indexes))
	for i, id := range l.Indexes {
		keys[i] = omapPending + id
	}
	if err := b.io.RmOmapKeys(b.jobObj(), keys); err != nil {
		return radosErr(b.jobObj(), err)
	}
	return nil
}

// discard removes a job that holds no revision and no index; its chunks
// stay for purge (they may already serve another job).
func (b *radosBackend) discard() error {
	m, err := b.io.GetAllOmapValues(b.jobObj(), "", "", 10)
	if err != nil || len(m) > 0 {
		return err
	}
	if err := b.io.Delete(b.jobObj()); err != nil && !errors.Is(err, rados.ErrNotFound) {
		return radosErr(b.jobObj(), err)
	}
	return b.io.RmOmapKeys(radosMarker, []string{omapJob + b.loc.Job})
}

// Locks: cls_lock object locks on the job object with a lease, renewed
// by a goroutine every third of the lease. A lock whose renewal fails, or
// is overdue, reports it through Held.

const (
	lockFlagMustRenew = 2 // LIBRADOS_LOCK_FLAG_MUST_RENEW
	ebusy             = -int(unix.EBUSY)
	eexist            = -int(unix.EEXIST)
)

// Lock takes one of the job's locks. The store lock, taken exclusively,
// also registers a writer with the pool (registerWriter), so that a purge
// spares what the store writes and reuses before it commits.
func (b *radosBackend) Lock(name string, shared bool, timeout time.Duration) (*Lock, error) {
	l, err := b.lockObj(b.jobObj(), name, shared, timeout, b.loc.String())
	if err != nil || name != LockStore || shared {
		return l, err
	}
	start := time.Now()
	if err := b.registerWriter(l.cookie, start); err != nil {
		l.Unlock()
		return nil, err
	}
	b.fence.set(l.cookie)
	release := l.release
	l.release = func() error {
		b.fence.set("")
		err := b.unregisterWriter(l.cookie)
		if rerr := release(); err == nil {
			err = rerr
		}
		return err
	}
	return l, nil
}

// hostname is os.Hostname (tests set another).
var hostname = os.Hostname

// lockCookie names a lock holder: HOST:PID:RANDOM, with the host's short
// name. A cookie has no '.': a writer's registration (writer.JOB.COOKIE)
// is taken apart at its last '.' by purges of every version, and a full
// host name (backup1.example.com) made a running store look dead to them,
// its chunks swept under it.
func lockCookie() string {
	host, _ := hostname()
	host, _, _ = strings.Cut(host, ".")
	return fmt.Sprintf("%s:%d:%s", host, os.Getpid(), NewRevisionID()[:8])
}

// lockObj takes lock name on object oid; what names the object in
// messages.
func (b *radosBackend) lockObj(oid, name string, shared bool, timeout time.Duration, what string) (*Lock, error) {
	cookie := lockCookie()
	deadline := time.Now().Add(timeout)
	take := func(flags *byte) (int, error) {
		if shared {
			return b.io.LockShared(oid, name, cookie, "backy", "backy", b.lease, flags)
		}
		return b.io.LockExclusive(oid, name, cookie, "backy", b.lease, flags)
	}
	for {
		ret, err := take(nil)
		if err != nil {
			return nil, fmt.Errorf("repo: lock %s of %s: %w", name, what, err)
		}
		if ret == 0 {
			break
		}
		if ret != ebusy && ret != eexist {
			return nil, fmt.Errorf("repo: lock %s of %s: error %d", name, what, ret)
		}
		if !time.Now().Before(deadline) {
			return nil, fmt.Errorf("%w: %s lock of %s is held%s", ErrBusy, name, what, b.holders(oid, name))
		}
		time.Sleep(100 * time.Millisecond)
	}
	l := &radosLock{renewed: time.Now(), lease: b.lease, stop: make(chan struct{}), done: make(chan struct{})}
	go l.renew(func() error {
		f := byte(lockFlagMustRenew)
		ret, err := take(&f)
		if err == nil && ret != 0 {
			err = fmt.Errorf("error %d", ret)
		}
		if err != nil && radosCode(err) == -int(syscall.ENOENT) {
			// cls_lock's word for a lock this cookie no longer holds
			return fmt.Errorf("%w: %s lock of %s: the lease ran out (this process was paused or cut off for longer than its %s) and the lock is gone or another's", ErrBusy, name, what, b.lease)
		}
		if err != nil {
			return fmt.Errorf("%w: %s lock of %s: the lease could not be renewed: %v", ErrBusy, name, what, err)
		}
		return nil
	})
	return &Lock{
		cookie: cookie,
		release: func() error {
			close(l.stop)
			<-l.done
			if _, err := b.io.Unlock(oid, name, cookie); err != nil {
				return fmt.Errorf("repo: unlock %s of %s: %w", name, what, err)
			}
			return nil
		},
		held: l.held,
	}, nil
}

// holders names who holds a lock, for the busy message.
func (b *radosBackend) holders(oid, name string) string {
	info, err := b.io.ListLockers(oid, name)
	if err != nil || info == nil || len(info.Cookies) == 0 {
		return ""
	}
	var who []string
	for _, c := range info.Cookies {
		if host, rest, ok := strings.Cut(c, ":"); ok {
			pid, _, _ := strings.Cut(rest, ":")
			who = append(who, "pid "+pid+" on "+host)
		}
	}
	return " (by " + strings.Join(who, ", ") + fmt.Sprintf("; a lease of %s, which ends by itself when its holder dies)", b.lease)
}

type radosLock struct {
	lease      time.Duration
	stop, done chan struct{}
	mu         sync.Mutex
	renewed    time.Time // last successful (re)lock, by this process's clock
	lost       error
}

func (l *radosLock) renew(lockAgain func() error) {
	defer close(l.done)
	t := time.NewTicker(l.lease / 3)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
		}
		start := time.Now()
		err := lockAgain()
		l.mu.Lock()
		if err != nil {
			if l.lost == nil {
				l.lost = err
			}
		} else if l.lost == nil {
			l.renewed = start
		}
		l.mu.Unlock()
	}
}

// held fails once a renewal failed or the last one is older than the
// lease less a safety margin of a sixth.
func (l *radosLock) held() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lost != nil {
		return l.lost
	}
	if age := time.Since(l.renewed); age > l.lease-l.lease/6 {
		return fmt.Errorf("%w: lease not renewed for %s", ErrBusy, age.Round(time.Millisecond))
	}
	return nil
}

// radosStore keeps chunks as objects chunk.HASH shared by every job of the
// pool. Each is written in one operation (exclusive create, full write,
// touched time), so an object under a chunk name always holds complete
// content; RADOS acknowledges a write once it is durable, so a batch has
// nothing left to do at commit.
type radosStore struct{ b *radosBackend }

func nowStamp() []byte { return []byte(strconv.FormatInt(time.Now().UnixNano(), 10)) }

// Has reports whether chunk h is stored, and refreshes its touched time
// in the same operation: a store reusing a chunk announces it to purge
// (docs/repository.md, "Purge on a shared pool").
func (s *radosStore) Has(h Hash) (bool, error) {
	err := s.touch(h)
	if errors.Is(err, rados.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, radosErr(chunkObj(h), err)
	}
	return true, nil
}

// exists reports whether chunk h is stored without refreshing its touched
// time: one read operation where Has is a write. For chunks a parent's
// index names, which that index keeps from purge (chunkExister).
func (s *radosStore) exists(h Hash) (bool, error) {
	st, err := s.b.io.Stat(chunkObj(h))
	if errors.Is(err, rados.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, radosErr(chunkObj(h), err)
	}
	return st.Size >= minStoredChunk, nil
}

func (s *radosStore) touch(h Hash) error {
	op := rados.CreateWriteOp()
	defer op.Release()
	op.AssertExists()
	op.SetXattr(radosTouched, nowStamp())
	return op.Operate(s.b.io, chunkObj(h), rados.OperationNoFlag)
}

// radosReads is how many chunk objects a process reads at once: each read
// needs a buffer of maxStoredChunk bytes, as librados copies what it
// received into the caller's buffer, whose size must be known before the
// object's is. The buffers are made on first use and kept, so reads
// allocate nothing and their memory is bounded in bytes (40 MiB) whatever
// the callers' concurrency; a ninth reader waits. A restore reads with 3
// workers per core (6 here), backy-nbd with its read-ahead.
const radosReads = 8

// readBufs is the free list of read buffers, most recently used last;
// readSlots holds a token per buffer in use.
var (
	readSlots = make(chan struct{}, radosReads)
	readBufs  struct {
		sync.Mutex
		free [][]byte
	}
)

func getReadBuf() []byte {
	readSlots <- struct{}{}
	readBufs.Lock()
	defer readBufs.Unlock()
	if n := len(readBufs.free); n > 0 {
		b := readBufs.free[n-1]
		readBufs.free = readBufs.free[:n-1]
		return b
	}
	return make([]byte, maxStoredChunk)
}

func putReadBuf(b []byte) {
	readBufs.Lock()
	readBufs.free = append(readBufs.free, b)
	readBufs.Unlock()
	<-readSlots
}

// read reads chunk h's object into buf (of maxStoredChunk bytes).
func (s *radosStore) read(h Hash, buf []byte) ([]byte, error) {
	n, err := s.b.io.Read(chunkObj(h), buf, 0)
	if errors.Is(err, rados.ErrNotFound) {
		return nil, fmt.Errorf("%w %s", ErrMissingChunk, h)
	}
	if err != nil {
		return nil, fmt.Errorf("repo: chunk %s: %w", h, err)
	}
	if n == len(buf) {
		return nil, fmt.Errorf("%w %s: object larger than any chunk", ErrCorruptChunk, h)
	}
	return buf[:n], nil
}

func (s *radosStore) Get(h Hash) ([]byte, error) {
	buf := getReadBuf()
	defer putReadBuf(buf)
	stored, err := s.read(h, buf)
	if err != nil {
		return nil, err
	}
	return append([]byte(nil), stored...), nil
}

// readChunk decompresses and verifies chunk h into dst straight from the
// buffer librados read it into (Repo.ReadChunk): a restore allocates
// nothing per chunk, where a copy of every stored chunk made garbage that
// let the Go heap grow to twice its live size (peak RSS of a restore of
// the bench image 160-170 MiB, of which 120 MiB Go heap).
func (s *radosStore) readChunk(dst []byte, h Hash) ([]byte, error) {
	buf := getReadBuf()
	defer putReadBuf(buf)
	stored, err := s.read(h, buf)
	if err != nil {
		return nil, err
	}
	return Decompress(dst, h, stored)
}

// chunkOf returns the chunk the object oid stores, if it is one; purge
// leaves foreign objects alone.
func chunkOf(oid string) (Hash, bool) {
	name, ok := strings.CutPrefix(oid, radosChunkPrefix)
	if !ok {
		return Hash{}, false
	}
	h, err := ParseHash(name)
	return h, err == nil
}

func (s *radosStore) Walk(fn func(Hash) error) error {
	var ferr error
	err := s.b.io.ListObjects(func(oid string) {
		if ferr != nil {
			return
		}
		if h, ok := chunkOf(oid); ok {
			ferr = fn(h)
		}
	})
	if ferr != nil {
		return ferr
	}
	if err != nil {
		return fmt.Errorf("repo: list pool %s: %w", s.b.loc.Pool, err)
	}
	return nil
}

func (s *radosStore) Remove(hs []Hash) error {
	for _, h := range hs {
		if err := s.b.io.Delete(chunkObj(h)); err != nil && !errors.Is(err, rados.ErrNotFound) {
			return radosErr(chunkObj(h), err)
		}
	}
	return nil
}

// radosWrites is how many chunk writes a batch keeps in flight. Put
// copies the chunk into one of as many buffers and returns, so that the
// store's workers compress the next chunks while the OSD stores this one:
// with each Put waiting for its write, the two workers of a store spent
// about two thirds of a full backup of the bench image waiting for RADOS
// (load 11: 334 writes took 17.2 s, the backup 15.4 s).
const radosWrites = 2

func (s *radosStore) Begin() (Batch, error) {
	b := &radosBatch{s: s, bufs: make(chan []byte, radosWrites)}
	for range radosWrites {
		b.bufs <- nil // made on first use, grown as needed
	}
	return b, nil
}

// radosBatch writes chunks in the background, at most radosWrites at once
// (so at most radosWrites * maxStoredChunk bytes of copies): Commit waits
// for them and reports the first error, which also fails every Put after
// it.
type radosBatch struct {
	s    *radosStore
	bufs chan []byte // free copy buffers
	wg   sync.WaitGroup
	mu   sync.Mutex
	err  error
}

func (p *radosBatch) failed() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// Put copies the chunk and writes it in the background (write).
func (p *radosBatch) Put(h Hash, compressed []byte) error {
	if err := p.failed(); err != nil {
		return err
	}
	buf := append((<-p.bufs)[:0], compressed...)
	p.wg.Add(1)
	p.s.b.writes.Add(1)
	go func() {
		defer p.s.b.writes.Done()
		defer p.wg.Done()
		err := radosWrite(p, h, buf)
		p.bufs <- buf
		if err != nil {
			p.mu.Lock()
			if p.err == nil {
				p.err = err
			}
			p.mu.Unlock()
		}
	}()
	return nil
}

// radosWrite is write, replaced by tests of the batch's error handling.
var radosWrite = (*radosBatch).write

// write stores a chunk unless the pool already has it intact. An existing
// object under the name is read and verified: intact, it is only touched
// (another job, or another server, stored it first); damaged, it is
// replaced in one full write, which repairs it.
func (p *radosBatch) write(h Hash, compressed []byte) error {
	oid := chunkObj(h)
	for range 3 {
		op := rados.CreateWriteOp()
		op.Create(rados.CreateExclusive)
		op.WriteFull(compressed)
		op.SetXattr(radosTouched, nowStamp())
		err := op.Operate(p.s.b.io, oid, rados.OperationNoFlag)
		op.Release()
		if err == nil {
			return nil
		}
		if !errors.Is(err, rados.ErrObjectExists) {
			return radosErr(oid, err)
		}
		stored, err := p.s.Get(h)
		if err == nil {
			_, err = Decompress(make([]byte, ChunkSize), h, stored)
		}
		if err == nil {
			err = p.s.touch(h)
			if errors.Is(err, rados.ErrNotFound) {
				continue // purged since: write it again
			}
			if err != nil {
				return radosErr(oid, err)
			}
			return nil
		}
		if errors.Is(err, ErrMissingChunk) {
			continue
		}
		op = rados.CreateWriteOp()
		op.WriteFull(compressed)
		op.SetXattr(radosTouched, nowStamp())
		err = op.Operate(p.s.b.io, oid, rados.OperationNoFlag)
		op.Release()
		if err != nil {
			return radosErr(oid, err)
		}
		return nil
	}
	return fmt.Errorf("repo: chunk %s: created and removed again three times", h)
}

// Reuse has nothing to do: a chunk object is durable once written, and
// Has refreshed its touched time when the store found it.
func (p *radosBatch) Reuse(Hash) {}

// Commit waits for the writes in flight: each was durable when RADOS
// acknowledged it.
func (p *radosBatch) Commit() error {
	p.wg.Wait()
	return p.failed()
}

// Abort waits for the writes in flight and leaves the chunks written:
// other stores may reuse them already, and purge removes those nobody
// uses.
func (p *radosBatch) Abort() { p.wg.Wait() }
