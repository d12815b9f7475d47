//go:build librbd

package fleet

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/backy/backy/pkg/cephconn"
	"github.com/ceph/go-ceph/rados"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"
)

// Available reports whether this build can join a fleet.
const Available = true

const (
	lockFlagMayRenew  = 1 // LIBRADOS_LOCK_FLAG_MAY_RENEW: renew if held by this locker, else take
	lockFlagMustRenew = 2 // LIBRADOS_LOCK_FLAG_MUST_RENEW: renew, fail if not held by this locker
	ebusy             = -int(unix.EBUSY)
	eexist            = -int(unix.EEXIST)
	memberTag         = "backy-fleet"
)

// Member is this daemon's part in a fleet: its membership lease, the
// ownership leases of its jobs and its run slots, renewed by one goroutine
// every quarter lease.
type Member struct {
	opt  Options
	conn *rados.Conn
	io   *rados.IOContext
	obj  string // the fleet object: members' lock, omap member.NAME

	stop, done chan struct{}
	changed    chan struct{} // to the daemon: ownership changed
	wake       chan struct{} // to the renewing goroutine: look again now

	mu      sync.Mutex
	jobs    []string             // the configured jobs
	held    map[string]time.Time // job -> start of its last successful renewal
	busy    map[string]bool      // running: kept even when it should move
	suspect map[string]bool      // held jobs whose last renewal timed out

	suspectRenewing map[string]bool // suspects whose renewal is in flight
	taking          map[string]bool // jobs whose take is in flight
	bg              sync.WaitGroup  // renewals and takes in flight
	slots           map[int]*slot   // run slots held
	members         []string        // live members at the last tick
	ticked          time.Time       // start of the last tick that reached the cluster
	joined          bool
	lastError       error
	stalled         bool   // Options.Stalled said so at the last tick
	ops             uint64 // lease operations sent (renewals, takes, lists)
}

// Join connects to the cluster, takes this member's membership lease and
// starts renewing. The jobs are set with SetJobs.
func Join(ctx context.Context, opt Options) (*Member, error) {
	if err := opt.check(); err != nil {
		return nil, err
	}
	// Every operation gives up after a quarter lease, so a daemon cut off
	// from the cluster notices long before its leases run out.
	co := opt.Ceph
	co.OpTimeout = opt.Lease / 4
	conn, err := cephconn.Connect(ctx, co)
	if err != nil {
		return nil, err
	}
	io, err := conn.OpenIOContext(opt.Pool)
	if err != nil {
		conn.Shutdown()
		return nil, fmt.Errorf("fleet: pool %s: %w", opt.Pool, err)
	}
	m := &Member{
		opt: opt, conn: conn, io: io, obj: "fleet." + opt.Fleet,
		stop: make(chan struct{}), done: make(chan struct{}), changed: make(chan struct{}, 1),
		wake: make(chan struct{}, 1), held: map[string]time.Time{}, busy: map[string]bool{}, slots: map[int]*slot{},
		suspect: map[string]bool{}, suspectRenewing: map[string]bool{}, taking: map[string]bool{},
	}
	if err := m.renewMembership(); err != nil {
		io.Destroy()
		conn.Shutdown()
		return nil, err
	}
	go m.run()
	return m, nil
}

func (m *Member) jobObj(job string) string { return m.obj + ".job." + job }
func (m *Member) slotObj(i int) string     { return m.obj + ".slot." + strconv.Itoa(i) }

func (m *Member) desc() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s pid %d", host, os.Getpid())
}

// SetJobs sets the configured jobs (at start and on reload); leases of
// jobs no longer configured are released when they are not running.
func (m *Member) SetJobs(jobs []string) {
	m.mu.Lock()
	m.jobs = slices.Clone(jobs)
	m.mu.Unlock()
	poke(m.wake)
}

func poke(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

func (m *Member) kick() { poke(m.changed) }

// Changed receives when ownership changed (a job was taken or lost).
func (m *Member) Changed() <-chan struct{} { return m.changed }

// fresh is how old a renewal may be for a lease to count as held: two
// thirds of the lease, so that a run is never started on a lease with less
// than a third of it left by this daemon's count. Durations are measured
// with the monotonic clock: the wall clock may be anything.
func (m *Member) fresh(t time.Time) bool {
	return !t.IsZero() && time.Since(t) < m.opt.Lease*2/3
}

// Owns reports whether this daemon holds job's lease, renewed recently
// enough to start a run on it.
func (m *Member) Owns(job string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.fresh(m.held[job]) && m.fresh(m.ticked)
}

// RenewedWithin reports whether job's lease is held and was last renewed
// (the renewal's start, by this daemon's monotonic clock) less than d ago.
// A running job's renewals go on while it runs; a daemon paused or cut
// off from the cluster stops renewing, and its runs learn it here.
func (m *Member) RenewedWithin(job string, d time.Duration) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.held[job]
	return ok && time.Since(t) < d
}

// Owned lists the jobs whose leases this daemon holds.
func (m *Member) Owned() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for j := range m.held {
		out = append(out, j)
	}
	slices.Sort(out)
	return out
}

// Members lists the live members as of the last renewal.
func (m *Member) Members() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.members)
}

// Ops is how many lease operations this member sent to the cluster.
func (m *Member) Ops() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.ops
}

// Confirm marks job busy and renews its lease now, at the OSD; it fails
// if the lease is not held: the last word before a run starts. A daemon
// that was paused or cut off learns here that its lease is gone. The held
// check and the busy mark are one critical section, the one a tick
// releases idle jobs in: a lease being released is never confirmed, and a
// confirmed one is not released. SetBusy(job, false) when the run ended
// (a failed Confirm leaves the job not busy).
func (m *Member) Confirm(job string) error {
	m.mu.Lock()
	_, ok := m.held[job]
	if ok {
		m.busy[job] = true
	}
	m.mu.Unlock()
	if !ok {
		return fmt.Errorf("%w: %s", ErrNotOwner, job)
	}
	start := time.Now()
	if err := m.renewJob(job); err != nil {
		m.SetBusy(job, false)
		if !timedOut(err) {
			m.drop(job)
		}
		// A renewal that timed out may have been applied or not: the
		// job stays held with its last renewal, and the next tick's
		// renewal tells. Dropping it would signal an ownership change
		// and make the daemon take the job over again (re-reading its
		// repository) when the lease was this daemon's all along.
		if timedOut(err) {
			return fmt.Errorf("%w: %s: %w", ErrLeaseStale, job, err)
		}
		return fmt.Errorf("%w: %s: %w", ErrNotOwner, job, err)
	}
	m.mu.Lock()
	if _, ok := m.held[job]; ok {
		m.held[job] = start
	}
	m.mu.Unlock()
	return nil
}

// SetBusy marks job as running (its lease is kept even if it should move)
// or done.
func (m *Member) SetBusy(job string, running bool) {
	m.mu.Lock()
	if running {
		m.busy[job] = true
	} else {
		delete(m.busy, job)
	}
	m.mu.Unlock()
	if !running {
		poke(m.wake)
	}
}

func (m *Member) drop(job string) {
	m.mu.Lock()
	_, ok := m.held[job]
	m.forget(job)
	m.mu.Unlock()
	if ok {
		m.kick()
	}
}

func (m *Member) lock(oid, name, cookie string, flag byte) error {
	var flags *byte
	if flag != 0 {
		flags = &flag
	}
	m.count()
	ret, err := m.io.LockExclusive(oid, name, cookie, m.desc(), m.opt.Lease, flags)
	if err != nil {
		return err
	}
	switch ret {
	case 0:
		return nil
	case ebusy, eexist:
		return errHeld
	}
	return fmt.Errorf("error %d", ret)
}

var errHeld = errors.New("held by another member")

func (m *Member) count() {
	m.mu.Lock()
	m.ops++
	m.mu.Unlock()
}

// take takes job's lease and reports whether it did, waiting at most
// slowAfter: a take that has not answered by then goes on in the
// background (the job is not tried again meanwhile, and a late success
// still counts and tells the daemon). MAY_RENEW: a take that timed out
// but was applied at the OSD after all left this member holding the
// lock; taking it again renews it instead of failing with EEXIST until
// the lease runs out.
func (m *Member) take(job string) bool {
	m.mu.Lock()
	m.taking[job] = true
	m.mu.Unlock()
	done, abandoned := make(chan bool), make(chan struct{})
	m.bg.Add(1)
	go func() {
		defer m.bg.Done()
		s := time.Now()
		err := m.takeJob(job)
		m.mu.Lock()
		delete(m.taking, job)
		if err == nil {
			m.held[job] = s
		}
		m.mu.Unlock()
		if err != nil && !errors.Is(err, errHeld) {
			// errHeld: the previous owner has not let go yet (or died
			// and its lease has not run out): a later tick takes it
			m.opt.log().Info(fmt.Sprintf("fleet: %s: taking the lease: %v", job, err))
		}
		select {
		case done <- err == nil:
		case <-abandoned:
			if err == nil {
				m.kick()
			}
		}
	}()
	t := time.NewTimer(m.slowAfter())
	defer t.Stop()
	select {
	case ok := <-done:
		return ok
	case <-t.C:
		close(abandoned)
		return false
	}
}

// takeFault and renewFault, set by tests only, answer a job's take or
// renewal instead of the cluster when they return an error (a placement
// group that does not answer cannot be made in a one-OSD test cluster).
var takeFault, renewFault atomic.Pointer[func(job string) error]

func (m *Member) takeJob(job string) error {
	return m.lockJob(job, &takeFault, lockFlagMayRenew)
}

func (m *Member) renewJob(job string) error {
	return m.lockJob(job, &renewFault, lockFlagMustRenew)
}

func (m *Member) lockJob(job string, fault *atomic.Pointer[func(string) error], flag byte) error {
	if f := fault.Load(); f != nil {
		if err := (*f)(job); err != nil {
			m.count()
			return err
		}
	}
	return m.lock(m.jobObj(job), "owner", m.opt.Member, flag)
}

func (m *Member) renewMembership() error {
	flags := byte(lockFlagMustRenew)
	var f *byte
	m.mu.Lock()
	if m.joined {
		f = &flags
	}
	m.mu.Unlock()
	m.count()
	ret, err := m.io.LockShared(m.obj, "member", m.opt.Member, memberTag, m.desc(), m.opt.Lease, f)
	if ((err != nil && !timedOut(err)) || ret != 0) && f != nil {
		// Expired (the daemon was paused or cut off; librados says
		// ENOENT as an error): join again. Not after a time-out: the
		// cluster does not answer, and a second try would only wait
		// as long again.
		m.count()
		ret, err = m.io.LockShared(m.obj, "member", m.opt.Member, memberTag, m.desc(), m.opt.Lease, nil)
	}
	if err == nil && ret != 0 {
		err = fmt.Errorf("error %d", ret)
	}
	if err != nil {
		return fmt.Errorf("fleet: membership lease of %s in %s/%s: %w", m.opt.Member, m.opt.Pool, m.obj, err)
	}
	m.mu.Lock()
	m.joined = true
	m.mu.Unlock()
	return nil
}

func (m *Member) listMembers() ([]string, error) {
	m.count()
	info, err := m.io.ListLockers(m.obj, "member")
	if err != nil {
		return nil, err
	}
	var out []string
	for _, c := range info.Cookies {
		out = append(out, c)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

func (m *Member) run() {
	defer close(m.done)
	t := time.NewTicker(m.opt.Lease / 4)
	defer t.Stop()
	m.tick()
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
		case <-m.wake: // SetJobs, or a run ended: look again now
		}
		m.tick()
	}
}

// tick renews everything held, then takes and releases jobs as the
// rendezvous hash over the live members says. Its phases are bounded, so
// that objects that do not answer (a placement group down) cannot hold up
// the rest: the run slots are renewed first (fleet-run-limit depends on
// them), then the jobs whose last renewal was answered, eight at a time,
// a renewal that does not answer within slowAfter making its job a
// suspect (renewHeld); suspects are renewed apart, off the tick
// (renewSuspects); takes get half a lease of their own.
func (m *Member) tick() {
	if m.opt.Stalled != nil {
		stalled := m.opt.Stalled()
		m.mu.Lock()
		was := m.stalled
		m.stalled = stalled
		m.mu.Unlock()
		switch {
		case stalled && !was:
			m.opt.log().Info("fleet: the daemon has stopped working (its loop does not come round): renewing nothing, so that the other members take its jobs")
		case !stalled && was:
			m.opt.log().Info("fleet: the daemon works again")
		}
		if stalled {
			return
		}
	}
	start := time.Now()
	err := m.renewMembership()
	var members []string
	if err == nil {
		members, err = m.listMembers()
	}
	if err != nil {
		m.lost(err)
		return
	}
	m.mu.Lock()
	if m.lastError != nil {
		m.opt.log().Info("fleet: cluster reachable again")
	}
	m.lastError = nil
	if !slices.Equal(members, m.members) {
		m.opt.log().Info(fmt.Sprintf("fleet: members %v", members))
	}
	m.members = members
	m.ticked = start
	var healthy []string
	for j := range m.held {
		if !m.suspect[j] {
			healthy = append(healthy, j)
		}
	}
	jobs := slices.Clone(m.jobs)
	slots := map[int]string{}
	for i, sl := range m.slots {
		slots[i] = sl.cookie
	}
	m.mu.Unlock()

	for i, cookie := range slots {
		if err := m.lock(m.slotObj(i), "run", cookie, lockFlagMustRenew); err != nil {
			m.opt.log().Info(fmt.Sprintf("fleet: run slot %d: lease lost: %v", i, err))
		}
	}
	changed := m.renewHeld(healthy)
	if m.unreachable() || m.stopping() {
		if changed {
			m.kick()
		}
		return
	}
	m.renewSuspects()

	want := Assign(jobs, members)
	// Taken in a new order each round and only for half a lease, each
	// take waited for at most slowAfter (take): a job whose object does
	// not answer cannot keep the others from being taken, nor the next
	// tick's renewals from coming in time.
	shuffle(jobs)
	takes := time.Now()
	for _, j := range jobs {
		if time.Since(takes) > m.opt.Lease/2 || m.stopping() {
			break
		}
		m.mu.Lock()
		_, have := m.held[j]
		busy := m.taking[j]
		m.mu.Unlock()
		if have || busy || want[j] != m.opt.Member {
			continue
		}
		if m.take(j) {
			changed = true
		}
	}
	// Release what should move, unless it runs: the lease is given up
	// before the new owner can take it. A job is dropped from held in the
	// same critical section that finds it idle, so a run claiming it
	// (Confirm, which marks it busy only while it is held) either made
	// it busy first and keeps it, or finds it gone and does not start:
	// never a run on a lease that is being released. A suspect's lease is
	// not unlocked (its object does not answer): it runs out.
	m.mu.Lock()
	var release []string
	for j := range m.held {
		if want[j] != m.opt.Member && !m.busy[j] {
			if !m.suspect[j] {
				release = append(release, j)
			}
			m.forget(j)
			changed = true
		}
	}
	m.mu.Unlock()
	m.releaseAll(release)
	if changed {
		m.kick()
	}
}

func shuffle(jobs []string) {
	rand.Shuffle(len(jobs), func(a, b int) { jobs[a], jobs[b] = jobs[b], jobs[a] })
}

// stopping reports whether Leave was called.
func (m *Member) stopping() bool {
	select {
	case <-m.stop:
		return true
	default:
		return false
	}
}

// forget drops job from what this member holds; m.mu is held.
func (m *Member) forget(job string) {
	delete(m.held, job)
	delete(m.suspect, job)
}

// renewParallel is how many job leases a member renews at once.
const renewParallel = 8

// suspectParallel is how many renewals of suspects (jobs whose renewal
// timed out or was slow) renewSuspects keeps in flight beside the ticks.
const suspectParallel = 2

// slowAfter is how long a renewal may take before its job counts as a
// suspect: its slot goes to the next job, and the renewal goes on in the
// background (its outcome still counts). Healthy renewals take
// milliseconds; a suspect named wrongly costs nothing but that.
func (m *Member) slowAfter() time.Duration { return m.opt.Lease / 16 }

// renewHeld renews the leases of jobs, renewParallel at a time, and drops
// the ones the OSD says are lost. A renewal that has not answered after
// slowAfter makes its job a suspect (its placement group down? or the
// cluster cut off?): it gives its slot up and goes on in the background,
// and the job is renewed apart from then on (renewSuspects) and keeps its
// last renewal, so that Owns says no once that is too old. So objects
// that do not answer hold up neither the other jobs nor the tick. When a
// renewal was slow, the membership lease (another object) is renewed once
// more to tell a placement group from the cluster: if that fails too, the
// cluster is lost (m.unreachable) and the tick ends. It reports whether a
// lease was lost.
func (m *Member) renewHeld(jobs []string) (changed bool) {
	var (
		sem  = make(chan struct{}, renewParallel)
		wg   sync.WaitGroup
		lost atomic.Bool
		slow atomic.Bool
	)
	for _, j := range jobs {
		if m.stopping() {
			break
		}
		sem <- struct{}{}
		wg.Add(1)
		m.bg.Add(1)
		go func() {
			defer m.bg.Done()
			var once sync.Once
			free := func() { once.Do(func() { <-sem; wg.Done() }) }
			fired := make(chan struct{})
			t := time.AfterFunc(m.slowAfter(), func() {
				defer close(fired)
				slow.Store(true)
				m.mu.Lock()
				m.suspectNow(j)
				m.suspectRenewing[j] = true
				m.mu.Unlock()
				free()
			})
			s := time.Now()
			err := m.renewJob(j)
			if !t.Stop() {
				<-fired // counted in flight as a suspect's: counted out after
			}
			if m.renewed(j, s, err) {
				lost.Store(true)
			}
			free()
		}()
	}
	wg.Wait()
	if slow.Load() {
		if err := m.renewMembership(); err != nil {
			m.lost(err)
		}
	}
	return lost.Load()
}

// suspectNow makes job a suspect, if it is held; m.mu is held.
func (m *Member) suspectNow(job string) {
	if _, ok := m.held[job]; ok && !m.suspect[job] {
		m.suspect[job] = true
		m.opt.log().Info(fmt.Sprintf("fleet: %s: the lease renewal has not answered within %s (its placement group slow or down?): renewed apart until it answers in time", job, m.slowAfter()))
	}
}

// renewed applies the outcome of a renewal of job started at s: renewed
// (no suspect any more), timed out (a suspect), or lost (dropped; it
// reports true, and the daemon is told). A suspect's renewal in flight is
// counted out.
func (m *Member) renewed(job string, s time.Time, err error) (lost bool) {
	m.mu.Lock()
	delete(m.suspectRenewing, job)
	_, held := m.held[job]
	switch {
	case !held:
	case err == nil:
		m.held[job] = s
		if m.suspect[job] {
			delete(m.suspect, job)
			m.opt.log().Info(fmt.Sprintf("fleet: %s: the lease renewal answers again", job))
		}
	case timedOut(err):
		m.suspectNow(job)
	default:
		m.opt.log().Info(fmt.Sprintf("fleet: %s: lease lost: %v", job, err))
		m.forget(job)
		lost = true
	}
	m.mu.Unlock()
	if lost {
		m.kick()
	}
	return lost
}

// renewSuspects starts renewals of suspects, at most suspectParallel in
// flight at once, without waiting for them (Leave does). A renewal the
// OSD answers in time (renewed, or the lease lost) goes on to the next
// suspect, so that once a placement group is back its jobs all settle
// within a tick or two, not suspectParallel a tick; one that times out or
// is slow ends there.
func (m *Member) renewSuspects() {
	for j := m.nextSuspect(); j != ""; j = m.nextSuspect() {
		m.bg.Add(1)
		go func() {
			defer m.bg.Done()
			for ; j != "" && !m.stopping(); j = m.nextSuspect() {
				s := time.Now()
				err := m.renewJob(j)
				answered := !timedOut(err) && time.Since(s) < m.slowAfter()
				m.renewed(j, s, err)
				if !answered {
					return
				}
			}
		}()
	}
}

// nextSuspect marks the renewal of a suspect in flight and returns it:
// one not renewed already, in an order Go's map iteration makes new each
// time, so every suspect gets its turn; "" when there is none, or when
// suspectParallel renewals are in flight.
func (m *Member) nextSuspect() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.suspectRenewing) >= suspectParallel {
		return ""
	}
	for j := range m.suspect {
		if !m.suspectRenewing[j] {
			m.suspectRenewing[j] = true
			return j
		}
	}
	return ""
}

// unreachable reports whether the last operation of a round found the
// cluster out of reach (m.lost), until a round reaches it again.
func (m *Member) unreachable() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lastError != nil
}

// lost notes that the cluster is out of reach (logged once until a tick
// reaches it again).
func (m *Member) lost(err error) {
	m.mu.Lock()
	if m.lastError == nil {
		m.opt.log().Info(fmt.Sprintf("fleet: lost the cluster: %v", err))
	}
	m.lastError = err
	m.mu.Unlock()
}

// timedOut: an operation gave up (Options.Ceph.OpTimeout): the cluster
// is out of reach, which says nothing about the lease.
func timedOut(err error) bool {
	var ec interface{ ErrorCode() int }
	return errors.As(err, &ec) && ec.ErrorCode() == -int(unix.ETIMEDOUT)
}

// releaseAll unlocks the ownership leases of jobs (already dropped from
// held), renewParallel at a time; after one times out the rest are left
// to run out (the cluster does not answer).
func (m *Member) releaseAll(jobs []string) {
	var (
		g   errgroup.Group
		cut atomic.Bool
	)
	g.SetLimit(renewParallel)
	for _, j := range jobs {
		g.Go(func() error {
			if cut.Load() {
				return nil
			}
			m.count()
			if _, err := m.io.Unlock(m.jobObj(j), "owner", m.opt.Member); err != nil {
				if timedOut(err) {
					cut.Store(true)
				}
				m.opt.log().Info(fmt.Sprintf("fleet: %s: releasing the lease: %v", j, err))
			}
			return nil
		})
	}
	g.Wait()
}

// Leave releases every lease and stops renewing; the member's jobs move
// to the others at their next renewal.
func (m *Member) Leave() {
	close(m.stop)
	<-m.done
	m.bg.Wait()
	m.mu.Lock()
	var release []string
	for j := range m.held {
		if !m.suspect[j] {
			release = append(release, j)
		}
		m.forget(j)
	}
	m.mu.Unlock()
	m.releaseAll(release)
	m.io.RmOmapKeys(m.obj, []string{omapMember + m.opt.Member})
	m.io.Unlock(m.obj, "member", m.opt.Member)
	m.io.Destroy()
	m.conn.Shutdown()
}

type slot struct{ cookie string }

// Slot takes one of the fleet's run slots for job, when the fleet has a
// run limit; release gives it back. Each slot is a lease on an object of
// its own, so a daemon that died frees its slots when they expire.
func (m *Member) Slot(job string) (release func(), err error) {
	if m.opt.RunLimit <= 0 {
		return func() {}, nil
	}
	cookie := m.opt.Member + ":" + job
	for i := range m.opt.RunLimit {
		m.mu.Lock()
		_, mine := m.slots[i]
		m.mu.Unlock()
		if mine {
			continue
		}
		switch err := m.lock(m.slotObj(i), "run", cookie, lockFlagMayRenew); {
		case err == nil:
			m.mu.Lock()
			m.slots[i] = &slot{cookie: cookie}
			m.mu.Unlock()
			return func() {
				m.mu.Lock()
				delete(m.slots, i)
				m.mu.Unlock()
				m.count()
				m.io.Unlock(m.slotObj(i), "run", cookie)
			}, nil
		case errors.Is(err, errHeld):
		default:
			return nil, fmt.Errorf("fleet: run slot %d: %w", i, err)
		}
	}
	return nil, fmt.Errorf("%w: %d runs of the fleet are running", ErrRunLimit, m.opt.RunLimit)
}

// Publish stores this member's view (what its status file says about its
// own jobs) in the fleet object, for every other member's status.
func (m *Member) Publish(view []byte) error {
	m.count()
	if err := m.io.SetOmap(m.obj, map[string][]byte{omapMember + m.opt.Member: view}); err != nil {
		return fmt.Errorf("fleet: publishing the view of %s: %w", m.opt.Member, err)
	}
	return nil
}

// Views returns what every member published, by member name, and the
// members alive now (holding their membership lease, as the OSD sees it).
func (m *Member) Views() (views map[string][]byte, alive []string, err error) {
	m.count()
	raw, err := m.io.GetAllOmapValues(m.obj, "", omapMember, 1000)
	if err != nil {
		return nil, nil, fmt.Errorf("fleet: reading the fleet view: %w", err)
	}
	views = map[string][]byte{}
	for k, v := range raw {
		views[k[len(omapMember):]] = v
	}
	alive, err = m.listMembers()
	if err != nil {
		return nil, nil, fmt.Errorf("fleet: listing the members: %w", err)
	}
	return views, alive, nil
}
