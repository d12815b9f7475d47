//go:build librbd

package repo

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ceph/go-ceph/rados"
	"golang.org/x/sys/unix"
)

// radosCode is the negative errno of a librados error, or 0.
func radosCode(err error) int {
	var c interface{ ErrorCode() int }
	if errors.As(err, &c) {
		return c.ErrorCode()
	}
	return 0
}

// Purge on a shared pool (docs/repository.md, "Purge on a shared pool"):
// mark from every job's indexes, sweep the chunks nobody marked that were
// neither written nor reused since the oldest running store began (less a
// grace period), each with a delete that fails if the chunk was touched
// after it was looked at.

const (
	lockPurge  = "purge"  // exclusive on the marker: one pool purge at a time
	omapPurged = "purged" // marker omap: when the last sweep began (unix ns)
)

func grace() time.Duration {
	if d, err := time.ParseDuration(os.Getenv(GraceEnv)); err == nil && d >= 0 {
		return d
	}
	return DefaultGrace
}

// registerWriter announces a store of this job to pool purges: the marker
// lists writer.JOB.COOKIE with the store's start. The entry is live while
// the job's store lock is held with that cookie.
func (b *radosBackend) registerWriter(cookie string, start time.Time) error {
	key := omapWriter + b.loc.Job + "." + cookie
	err := b.io.SetOmap(radosMarker, map[string][]byte{key: []byte(strconv.FormatInt(start.UnixNano(), 10))})
	if err != nil {
		return radosErr(radosMarker, err)
	}
	return nil
}

func (b *radosBackend) unregisterWriter(cookie string) error {
	return b.io.RmOmapKeys(radosMarker, []string{omapWriter + b.loc.Job + "." + cookie})
}

func (b *radosBackend) PurgePool(ctx context.Context, opt PoolPurgeOptions) (*PoolPurge, error) {
	if opt.Unsafe == nil {
		opt.Unsafe = errors.New("repo: purge refused")
	}
	pl, err := b.lockObj(radosMarker, lockPurge, false, opt.Wait, "pool "+b.loc.Pool)
	if err != nil {
		return nil, err
	}
	defer pl.Unlock()
	res := &PoolPurge{}
	all, err := b.io.GetAllOmapValues(radosMarker, "", "", 1000)
	if err != nil {
		return nil, radosErr(radosMarker, err)
	}
	if v, ok := all[omapPurged]; ok {
		if ns, err := strconv.ParseInt(string(v), 10, 64); err == nil {
			res.LastSweep = time.Unix(0, ns)
		}
	}
	started := time.Now()
	if opt.MinInterval > 0 && started.Sub(res.LastSweep) < opt.MinInterval {
		res.Skipped = true
		return res, nil
	}
	cutoff, err := b.cutoff(all, started, res)
	if err != nil {
		return nil, err
	}
	res.Cutoff = cutoff
	used := map[Hash]struct{}{}
	for k := range all {
		job, ok := strings.CutPrefix(k, omapJob)
		if !ok {
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		res.Jobs++
		if err := b.markJob(job, used, res, opt); err != nil {
			return nil, err
		}
	}
	garbage, unlisted, err := b.walkPool(ctx, all, used, res)
	if err != nil {
		return nil, err
	}
	// A job object the list lacks (the marker object lost and made again
	// empty by the next store) is marked too, and listed again: its
	// chunks are as used as any.
	for _, job := range unlisted {
		if !opt.DryRun {
			if err := b.io.SetOmap(radosMarker, map[string][]byte{omapJob + job: nil}); err != nil {
				return nil, radosErr(radosMarker, err)
			}
		}
		res.Jobs++
		res.Relisted = append(res.Relisted, job)
		if err := b.markJob(job, used, res, opt); err != nil {
			return nil, err
		}
	}
	garbage = slices.DeleteFunc(garbage, func(h Hash) bool { _, ok := used[h]; return ok })
	res.Referenced = len(used)
	if err := b.sweep(ctx, garbage, cutoff, res, opt.DryRun); err != nil {
		return nil, err
	}
	if !opt.DryRun {
		stamp := []byte(strconv.FormatInt(started.UnixNano(), 10))
		if err := b.io.SetOmap(radosMarker, map[string][]byte{omapPurged: stamp}); err != nil {
			return nil, radosErr(radosMarker, err)
		}
	}
	if err := pl.Held(); err != nil {
		return nil, err
	}
	return res, nil
}

// walkPool lists the pool once: the chunks not in used, and the jobs
// whose object is there but which the marker's omap (listed, as PurgePool
// read it) does not hold. A job made since (its store lists it before it
// makes its object) is told apart by reading the list again, only when
// the walk found any.
func (b *radosBackend) walkPool(ctx context.Context, listed map[string][]byte, used map[Hash]struct{}, res *PoolPurge) (garbage []Hash, unlisted []string, err error) {
	var ferr error
	err = b.io.ListObjects(func(oid string) {
		if ferr != nil {
			return
		}
		if job, ok := strings.CutPrefix(oid, radosJobPrefix); ok {
			if _, ok := listed[omapJob+job]; !ok && validJob(job) {
				unlisted = append(unlisted, job)
			}
			return
		}
		h, ok := chunkOf(oid)
		if !ok {
			return
		}
		res.Chunks++
		if _, ok := used[h]; !ok {
			garbage = append(garbage, h)
		}
		ferr = ctx.Err()
	})
	if ferr != nil {
		return nil, nil, ferr
	}
	if err != nil {
		return nil, nil, fmt.Errorf("repo: list pool %s: %w", b.loc.Pool, err)
	}
	if len(unlisted) > 0 {
		now, err := b.io.GetAllOmapValues(radosMarker, "", omapJob, 1000)
		if err != nil {
			return nil, nil, radosErr(radosMarker, err)
		}
		unlisted = slices.DeleteFunc(unlisted, func(job string) bool { _, ok := now[omapJob+job]; return ok })
	}
	return garbage, unlisted, nil
}

// cutoff is the oldest start of a running store, or the purge's start,
// less the grace period; registrations of stores whose lock is gone are
// dropped.
func (b *radosBackend) cutoff(all map[string][]byte, started time.Time, res *PoolPurge) (time.Time, error) {
	oldest := started
	for k, v := range all {
		rest, ok := strings.CutPrefix(k, omapWriter)
		if !ok {
			continue
		}
		live, err := b.writerLive(rest)
		if err != nil {
			return time.Time{}, err
		}
		if !live {
			_ = b.io.RmOmapKeys(radosMarker, []string{k})
			continue
		}
		res.Writers++
		if ns, err := strconv.ParseInt(string(v), 10, 64); err == nil && time.Unix(0, ns).Before(oldest) {
			oldest = time.Unix(0, ns)
		}
	}
	return oldest.Add(-grace()), nil
}

// writerLive reports whether the writer registered as writer.REST is
// running: REST is JOB.COOKIE, and the job's store lock is held with that
// cookie. Cookies have no '.' now, but a job may, and so did the cookies
// of earlier versions on hosts with a full name (backup1.example.com): so
// every split at a '.' before the cookie's first ':' is tried, and the
// writer is dead only if none names a held lock.
func (b *radosBackend) writerLive(rest string) (bool, error) {
	colon := strings.IndexByte(rest, ':')
	if colon < 0 {
		colon = len(rest)
	}
	for i := 0; i < colon; i++ {
		if rest[i] != '.' {
			continue
		}
		job, cookie := rest[:i], rest[i+1:]
		info, err := b.io.ListLockers(radosJobPrefix+job, LockStore)
		if err != nil && !errors.Is(err, rados.ErrNotFound) {
			return false, radosErr(radosJobPrefix+job, err)
		}
		if info != nil && slices.Contains(info.Cookies, cookie) {
			return true, nil
		}
	}
	return false, nil
}

// markJob adds the chunks of one job's revisions to used. A job nobody
// uses (its store and chunks locks free) first loses its leftover indexes
// (forgotten revisions, interrupted stores); a busy job's leftover indexes
// are marked like revisions, since a store may build on one, or a reader
// read one, until it is done.
func (b *radosBackend) markJob(job string, used map[Hash]struct{}, res *PoolPurge, opt PoolPurgeOptions) error {
	jb := &radosBackend{loc: RadosLocation{Pool: b.loc.Pool, Job: job}, conn: b.conn, io: b.io, chunks: b.chunks, lease: b.lease}
	r := newRepo(jb, "")
	idle := false
	// The store lock through lockObj: no writer registration for a look.
	// Held only until the leftovers are gone, not while the indexes are
	// read (seconds for a large job): the job's stores, restores and
	// readers would fail as busy meanwhile. A store that starts after
	// that writes and touches its chunks after this purge began, and the
	// sweep keeps them.
	var held []*Lock
	release := func() {
		for _, l := range held {
			l.Unlock()
		}
		held = nil
	}
	defer release()
	if st, err := jb.lockObj(jb.jobObj(), LockStore, false, 0, jb.loc.String()); err == nil {
		held = append(held, st)
		if ch, err := jb.Lock(LockChunks, false, 0); err == nil {
			idle = true
			held = append(held, ch)
		}
	}
	meta, err := jb.Lock(LockMeta, false, max(opt.Wait, time.Minute))
	if err != nil {
		return err
	}
	defer meta.Unlock()
	m, err := jb.io.GetAllOmapValues(jb.jobObj(), "", "", 1000)
	if errors.Is(err, rados.ErrNotFound) {
		return nil // discarded since the list was read
	}
	if err != nil {
		return radosErr(jb.jobObj(), err)
	}
	var ids, pending []string
	for k := range m {
		if id, ok := strings.CutPrefix(k, omapRev); ok {
			ids = append(ids, id)
		} else if id, ok := strings.CutPrefix(k, omapPending); ok {
			if _, pub := m[omapRev+id]; !pub {
				pending = append(pending, id)
			}
		}
	}
	if idle && len(pending) > 0 && !opt.DryRun {
		if err := jb.RemoveLeftovers(Leftovers{Indexes: pending}); err != nil {
			return err
		}
		res.Indexes += len(pending)
		pending = nil
	}
	release()
	if markHook != nil {
		markHook(job)
	}
	res.Revisions += len(ids)
	for _, id := range ids {
		ix, err := r.readIndex(id)
		if err != nil {
			return fmt.Errorf("%w: job %s: %w", opt.Unsafe, job, err)
		}
		addHashes(used, ix)
	}
	for _, id := range pending {
		ix, err := r.readIndex(id)
		if errors.Is(err, ErrCorruptIndex) {
			if _, serr := jb.io.Stat(jb.indexObj(id)); errors.Is(serr, rados.ErrNotFound) {
				continue // never written: a store died before its index
			}
		}
		if err != nil {
			return fmt.Errorf("%w: job %s: %w", opt.Unsafe, job, err)
		}
		addHashes(used, ix)
	}
	return nil
}

func addHashes(used map[Hash]struct{}, ix *Index) {
	for _, h := range ix.Hashes {
		if !h.IsZero() {
			used[h] = struct{}{}
		}
	}
}

// sweepHook, when set (tests), runs between reading a chunk's version and
// removing it; markHook before a job's indexes are read.
var (
	sweepHook func(Hash)
	markHook  func(job string)
)

// sweep removes the unreferenced chunks touched before cutoff. Each is
// read (touched time, object version) and removed by an operation that
// asserts the version: a store that reused the chunk meanwhile changed
// it, and the chunk stays.
func (b *radosBackend) sweep(ctx context.Context, garbage []Hash, cutoff time.Time, res *PoolPurge, dry bool) error {
	io, err := b.conn.OpenIOContext(b.loc.Pool) // GetLastVersion is per IOContext
	if err != nil {
		return radosErr(b.loc.Pool, err)
	}
	defer io.Destroy()
	buf := make([]byte, 32)
	for _, h := range garbage {
		if err := ctx.Err(); err != nil {
			return err
		}
		oid := chunkObj(h)
		n, err := io.GetXattr(oid, radosTouched, buf)
		if errors.Is(err, rados.ErrNotFound) {
			continue // gone already
		}
		var touched time.Time
		if err == nil {
			if ns, perr := strconv.ParseInt(string(buf[:n]), 10, 64); perr == nil {
				touched = time.Unix(0, ns)
			}
		} else if radosCode(err) != -int(unix.ENODATA) { // no stamp: as old as can be
			return radosErr(oid, err)
		}
		if !touched.Before(cutoff) {
			res.Young++
			continue
		}
		ver, err := io.GetLastVersion()
		if err != nil {
			return radosErr(oid, err)
		}
		if sweepHook != nil {
			sweepHook(h)
		}
		if dry {
			res.Removed++
			continue
		}
		op := rados.CreateWriteOp()
		op.AssertVersion(ver)
		op.Remove()
		err = op.Operate(io, oid, rados.OperationNoFlag)
		op.Release()
		switch {
		case err == nil:
			res.Removed++
		case errors.Is(err, rados.ErrNotFound):
		default:
			res.Young++ // touched since it was looked at: kept
		}
	}
	return nil
}
