package daemon

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/backy/backy/pkg/config"
	"github.com/backy/backy/pkg/exitcode"
	"github.com/backy/backy/pkg/fleet"
	"github.com/backy/backy/pkg/jobstatus"
)

// ErrFleetChange refuses a reload that changes the fleet settings.
var ErrFleetChange = exitcode.New(exitcode.Usage, "daemon: the fleet settings cannot change while running")

// fleetState is the daemon's side of a fleet (pkg/fleet): the member, and
// the other members' views as last read, for the status file. Its methods
// do nothing on a nil receiver, a daemon outside a fleet.
type fleetState struct {
	m *fleet.Member
	// renewedWithin is m.RenewedWithin (a test's own in unit tests).
	renewedWithin func(job string, d time.Duration) bool
	name          string
	self          string
	lease         time.Duration

	views   chan []byte // this daemon's view, to publish
	stop    chan struct{}
	stopped chan struct{}

	// ready holds the owned jobs whose repository was read since this
	// daemon took them over (the previous owner ran them meanwhile); only
	// they may start. The loop goroutine alone uses it.
	ready map[string]bool

	mu     sync.Mutex
	others map[string]memberView // alive members' views, by name (self included)
	alive  []string
	err    string // why the last exchange failed
}

// memberView is what a member publishes in the fleet object's omap.
type memberView struct {
	Host    string                   `json:"host"`
	PID     int                      `json:"pid"`
	Started time.Time                `json:"started"`
	Written time.Time                `json:"written"`
	Running int                      `json:"running"`
	Jobs    map[string]jobstatus.Job `json:"jobs"` // the jobs it owns
}

func joinFleet(d *daemon, g config.Global) (*fleetState, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	d.beat.Store(time.Now().UnixNano())
	m, err := fleet.Join(ctx, fleet.Options{
		Ceph: g.Ceph, Pool: g.RadosPool, Fleet: g.Fleet, Member: g.FleetMember,
		Lease: g.FleetLease, RunLimit: g.FleetRunLimit, Log: d.log.Logger,
		Stalled: func() bool { return d.stalled(g.FleetLease) },
	})
	if err != nil {
		return nil, fmt.Errorf("daemon: joining fleet %s in pool %s: %w", g.Fleet, g.RadosPool, err)
	}
	f := &fleetState{m: m, renewedWithin: m.RenewedWithin, name: g.Fleet, self: g.FleetMember, lease: g.FleetLease,
		ready: map[string]bool{}, views: make(chan []byte, 1), stop: make(chan struct{}), stopped: make(chan struct{})}
	m.SetJobs(d.cfg.JobNames())
	d.log.Info(fmt.Sprintf("fleet %s: member %s, lease %s, run limit %d", g.Fleet, g.FleetMember, g.FleetLease, g.FleetRunLimit))
	go f.exchange()
	return f, nil
}

// stalled reports that the daemon's loop has not come round for half a
// lease (it comes round at least every quarter lease in a fleet): a
// reload waiting for a repository that does not answer, say. Its
// member then lets its leases run out, and the others run its jobs.
func (d *daemon) stalled(lease time.Duration) bool {
	return time.Since(time.Unix(0, d.beat.Load())) > lease/2
}

// fleetUnchanged refuses a reload that would change the fleet settings: a
// daemon that left one fleet for another, or changed its name, while its
// leases are held would confuse the others; restart it instead.
// In a fleet the cluster its leases live in is fixed too (rados-pool and
// the global ceph-conf and ceph-user): runs in another cluster than the
// leases that cover them would not be covered.
func fleetUnchanged(old, c config.Global) error {
	if old.Fleet == c.Fleet && old.FleetMember == c.FleetMember && old.FleetLease == c.FleetLease &&
		old.FleetRunLimit == c.FleetRunLimit &&
		(old.Fleet == "" || old.RadosPool == c.RadosPool && old.Ceph.Conf == c.Ceph.Conf && old.Ceph.User == c.Ceph.User) {
		return nil
	}
	return fmt.Errorf("%w (fleet, fleet-member, fleet-lease, fleet-run-limit, rados-pool, ceph-conf, ceph-user); restart backy-schedule", ErrFleetChange)
}

func (f *fleetState) changed() <-chan struct{} {
	if f == nil {
		return nil
	}
	return f.m.Changed()
}

// owns is the scheduler's gate: the job's lease is held and fresh, and its
// repository was read since it was taken.
func (f *fleetState) owns(name string) bool { return f.ready[name] && f.m.Owns(name) }

// takeOver reads the repositories of the jobs this daemon took since the
// last call, away from the loop, and lets them start once read; jobs it
// lost are forgotten.
func (d *daemon) takeOver() {
	f := d.fleet
	owned := f.m.Owned()
	for name := range f.ready {
		if !slices.Contains(owned, name) {
			delete(f.ready, name)
		}
	}
	for _, name := range owned {
		j, ok := d.s.jobs[name]
		if _, known := f.ready[name]; known || !ok {
			continue
		}
		f.ready[name] = false
		loc := jobstatus.Location{Dir: j.job.Directory, Ceph: j.job.Ceph}
		go func() {
			info := jobstatus.ScanRepo(loc)
			d.call(func() {
				if _, still := f.ready[name]; !still {
					return
				}
				f.ready[name] = true
				if j, ok := d.s.jobs[name]; ok && !j.running {
					j.repo = info
					d.s.replan(j, time.Now())
				}
			})
		}()
	}
}

func (f *fleetState) setJobs(names []string) {
	if f != nil {
		f.m.SetJobs(names)
	}
}

// claim is the last check before a run starts: the job's lease renewed at
// the OSD just now, and a run slot of the fleet. release ends both.
func (f *fleetState) claim(job string) (release func(), err error) {
	if f == nil {
		return func() {}, nil
	}
	if err := f.m.Confirm(job); err != nil {
		return nil, err
	}
	freeSlot, err := f.m.Slot(job)
	if err != nil {
		f.m.SetBusy(job, false)
		return nil, err
	}
	return func() {
		freeSlot()
		f.m.SetBusy(job, false)
	}, nil
}

// gate makes every process of a run start only while job's lease is
// fresh (renewed less than two thirds of a lease ago, by this daemon's
// monotonic clock, which counts a pause): Confirm is the last word at the
// OSD, this is the last word before each pipeline of the run starts.
func (f *fleetState) gate(ctx context.Context, job string) context.Context {
	if f == nil {
		return ctx
	}
	return withGate(ctx, func() error {
		if !f.m.Owns(job) {
			return fmt.Errorf("%w: %s: its lease was not renewed recently enough to start a process", fleet.ErrLeaseStale, job)
		}
		return nil
	})
}

// watch stops a run whose job's lease this daemon has not renewed for
// five sixths of a lease (paused, or cut off from the cluster): the
// lease may run out at the OSD before the run ends, and another daemon
// would then own the job. ctx is cancelled with fleet.ErrLeaseStale as its
// cause, which ends the run's process groups (SIGTERM, then SIGKILL). A
// store that reaches its commit all the same is fenced there (its publish
// asserts its store lock). unwatch ends the watch when the run ended.
func (f *fleetState) watch(ctx context.Context, job string) (_ context.Context, unwatch func()) {
	if f == nil {
		return ctx, func() {}
	}
	ctx, cancel := context.WithCancelCause(ctx)
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(max(f.lease/12, 10*time.Millisecond))
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if !f.renewedWithin(job, f.lease*5/6) {
				cancel(fmt.Errorf("%w: %s: its lease was not renewed for 5/6 of a lease, the run was stopped", fleet.ErrLeaseStale, job))
				return
			}
		}
	}()
	return ctx, func() {
		close(done)
		cancel(nil)
	}
}

// lostDuring turns a run that stopped because its lease was lost into one
// that did not run (the gate refused the backup step) or an interrupted
// one (the watch stopped it, or the gate refused a later step): neither
// is the job's failure. ctx is the run's, from watch.
func (f *fleetState) lostDuring(ctx context.Context, res *Result) {
	if f == nil || res.Err == nil {
		return
	}
	if cause := context.Cause(ctx); errors.Is(cause, fleet.ErrLeaseStale) && !errors.Is(res.Err, fleet.ErrLeaseStale) {
		// Stopped by the watch only if a process ended by the signal
		// (or exited as interrupted): a run that failed on its own just
		// before the watch fired stays a failure, with its backoff.
		if stoppedBySignal(res.Err) {
			res.Err = fmt.Errorf("%w (%w)", cause, res.Err)
			res.Interrupted = true
		}
		return
	}
	if !errors.Is(res.Err, fleet.ErrLeaseStale) {
		return
	}
	if res.Revision == "" {
		res.NotRun = &NotRun{}
	} else {
		res.Interrupted = true
	}
}

// stoppedBySignal reports whether a process of the failed step was
// killed by a signal or exited with the interrupted status (backy's
// commands on SIGTERM).
func stoppedBySignal(err error) bool {
	var se *StageError
	return errors.As(err, &se) && slices.ContainsFunc(se.Failed, func(p ProcExit) bool {
		return p.Signal != "" || p.Code == exitcode.Interrupted
	})
}

// retryIn is how long a job whose run could not start waits: a full fleet
// a quarter lease (a slot frees at the earliest then); a lost lease not
// at all (the job runs when it is owned again).
func (f *fleetState) retryIn(err error) time.Duration {
	if errors.Is(err, fleet.ErrRunLimit) {
		return max(time.Second, f.lease/4)
	}
	return 0
}

func (f *fleetState) leave() {
	if f == nil {
		return
	}
	close(f.stop)
	<-f.stopped
	f.m.Leave()
}

// publish hands this daemon's view to the exchange goroutine; a view not
// yet sent is replaced.
func (f *fleetState) publish(v []byte) {
	select {
	case <-f.views:
	default:
	}
	f.views <- v
}

// exchange publishes this daemon's view and reads everyone's, away from
// the loop: a cluster that does not answer holds up only this goroutine.
func (f *fleetState) exchange() {
	defer close(f.stopped)
	for {
		var v []byte
		select {
		case <-f.stop:
			return
		case v = <-f.views:
		}
		err := f.m.Publish(v)
		var raw map[string][]byte
		var alive []string
		if err == nil {
			raw, alive, err = f.m.Views()
		}
		f.mu.Lock()
		if err != nil {
			f.err = err.Error()
		} else {
			f.err = ""
			f.alive = alive
			f.others = map[string]memberView{}
			for name, b := range raw {
				var mv memberView
				if json.Unmarshal(b, &mv) == nil && slices.Contains(alive, name) {
					f.others[name] = mv
				}
			}
		}
		f.mu.Unlock()
	}
}

// fleetStatus fills in the fleet's part of a status and publishes this
// daemon's view.
func (d *daemon) fleetStatus(st *jobstatus.Status) {
	v := d.ownView(st)
	if b, err := json.Marshal(v); err == nil {
		d.fleet.publish(b)
	}
	d.mergeFleet(st, v)
}

// ownView marks this daemon's own jobs in st and returns what it publishes.
func (d *daemon) ownView(st *jobstatus.Status) memberView {
	f := d.fleet
	mine := map[string]jobstatus.Job{}
	for _, j := range f.m.Owned() {
		if js, ok := st.Jobs[j]; ok {
			js.Owner = f.self
			st.Jobs[j] = js
			mine[j] = js
		}
	}
	host, _ := os.Hostname()
	return memberView{Host: host, PID: os.Getpid(), Started: d.started, Written: st.Written, Running: st.Running, Jobs: mine}
}

// mergeFleet puts every job of the fleet into st as its owner last
// published it (this daemon's own as view has them), and the members.
func (d *daemon) mergeFleet(st *jobstatus.Status, view memberView) {
	f := d.fleet
	f.mu.Lock()
	defer f.mu.Unlock()
	fs := &jobstatus.Fleet{Name: f.name, Member: f.self, Lease: f.lease.Seconds(), Error: f.err}
	names := slices.Clone(f.alive)
	if !slices.Contains(names, f.self) {
		names = append(names, f.self)
	}
	slices.Sort(names)
	for _, name := range names {
		mv, ok := f.others[name]
		fm := jobstatus.FleetMember{Name: name, Alive: slices.Contains(f.alive, name)}
		if name == f.self {
			mv, ok = view, true
			fm.Alive = slices.Contains(f.m.Members(), f.self)
		}
		if ok {
			fm.Host, fm.PID, fm.Written, fm.Running, fm.Jobs = mv.Host, mv.PID, mv.Written, mv.Running, len(mv.Jobs)
		}
		fs.Members = append(fs.Members, fm)
		if name == f.self {
			continue
		}
		for job, js := range mv.Jobs {
			if cur, ok := st.Jobs[job]; ok && cur.Owner == "" {
				js.Owner = name
				st.Jobs[job] = js
			}
		}
	}
	st.Fleet = fs
}

// fleetView is the status of the whole fleet as this daemon sees it now,
// without publishing (console and metrics).
func (d *daemon) fleetView(now time.Time) *jobstatus.Status {
	st := &jobstatus.Status{Written: now, Running: d.s.running, Jobs: d.s.jobStatuses(now)}
	if d.fleet != nil {
		d.mergeFleet(st, d.ownView(st))
	}
	return st
}

// writeFleet is the console's fleet command: the members, then each job
// with its owner.
func (d *daemon) writeFleet(w io.Writer, now time.Time) {
	if d.fleet == nil {
		fmt.Fprintln(w, "not in a fleet")
		return
	}
	st := d.fleetView(now)
	f := st.Fleet
	fmt.Fprintf(w, "fleet %s, member %s, lease %s\n", f.Name, f.Member, d.fleet.lease)
	if f.Error != "" {
		fmt.Fprintf(w, "cluster unreachable: %s\n", f.Error)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "MEMBER\tALIVE\tHOST\tPID\tJOBS\tRUNNING\tVIEW WRITTEN")
	for _, m := range f.Members {
		fmt.Fprintf(tw, "%s\t%v\t%s\t%d\t%d\t%d\t%s\n", m.Name, m.Alive, m.Host, m.PID, m.Jobs, m.Running, when(m.Written))
	}
	tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "JOB\tOWNER\tSTATE\tSLA\tLAST SUCCESS")
	for _, name := range slices.Sorted(maps.Keys(st.Jobs)) {
		js := st.Jobs[name]
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", name, cmp.Or(js.Owner, "-"), state(js), js.SLA, when(js.LastSuccess))
	}
	tw.Flush()
}
