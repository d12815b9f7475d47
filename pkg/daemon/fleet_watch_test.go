package daemon

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/backy/backy/pkg/cephconn"
	"github.com/backy/backy/pkg/config"
	"github.com/backy/backy/pkg/fleet"
)

// The watch leaves a run alone while its lease is renewed, and stops it
// (cancels its context with fleet.ErrLeaseStale as the cause) once the last
// renewal is older than 5/6 lease.
func TestFleetWatchStopsStaleRun(t *testing.T) {
	var renewed atomic.Bool
	renewed.Store(true)
	var asked atomic.Int64
	f := &fleetState{lease: 600 * time.Millisecond, renewedWithin: func(job string, d time.Duration) bool {
		asked.Add(1)
		if job != "vm1" || d != 500*time.Millisecond {
			t.Errorf("asked about %s within %s, want vm1 within 500ms", job, d)
		}
		return renewed.Load()
	}}
	ctx, unwatch := f.watch(context.Background(), "vm1")
	defer unwatch()
	time.Sleep(300 * time.Millisecond)
	if ctx.Err() != nil {
		t.Fatalf("stopped while renewed: %v", context.Cause(ctx))
	}
	if asked.Load() < 2 {
		t.Fatalf("the watch looked %d times in 300 ms (every 50 ms expected)", asked.Load())
	}
	renewed.Store(false)
	stale := time.Now()
	select {
	case <-ctx.Done():
	case <-time.After(2 * time.Second):
		t.Fatal("not stopped 2 s after its lease went stale")
	}
	if took := time.Since(stale); took > time.Second {
		t.Errorf("stopped %s after the lease went stale; it looks every 50 ms", took)
	}
	if cause := context.Cause(ctx); !errors.Is(cause, fleet.ErrLeaseStale) {
		t.Errorf("cause %v, want fleet.ErrLeaseStale", cause)
	}
}

// unwatch ends the watch: a run that ended is not cancelled with a cause
// afterwards.
func TestFleetUnwatch(t *testing.T) {
	f := &fleetState{lease: 120 * time.Millisecond, renewedWithin: func(string, time.Duration) bool { return false }}
	ctx, unwatch := f.watch(context.Background(), "vm1")
	unwatch()
	time.Sleep(50 * time.Millisecond)
	if cause := context.Cause(ctx); errors.Is(cause, fleet.ErrLeaseStale) {
		t.Fatalf("cause after unwatch: %v", cause)
	}
}

// What a stopped run counts as: interrupted when the watch stopped it (a
// process ended by the signal, or as interrupted), a failure when it
// failed on its own, "not run" when the gate refused the backup step.
func TestFleetLostDuring(t *testing.T) {
	f := &fleetState{lease: time.Second}
	stale, cancel := context.WithCancelCause(context.Background())
	cancel(errors.Join(fleet.ErrLeaseStale, errors.New("vm1: its lease was not renewed")))
	for _, tc := range []struct {
		name        string
		ctx         context.Context
		res         Result
		interrupted bool
		notRun      bool
		leaseStale  bool
	}{
		{"killed by the watch", stale, Result{Err: &StageError{Failed: []ProcExit{{Name: "backy-store", Code: -1, Signal: "killed"}}}}, true, false, true},
		{"exited as interrupted", stale, Result{Revision: "aaaaaaaaaaaaaaaa", Err: &StageError{Failed: []ProcExit{{Name: "backy-store", Code: 130}}}}, true, false, true},
		{"failed on its own", stale, Result{Err: &StageError{Failed: []ProcExit{{Name: "backy-store", Code: 1}}}}, false, false, false},
		{"gate refused the backup", context.Background(), Result{Err: fleet.ErrLeaseStale}, false, true, true},
		{"gate refused verify", context.Background(), Result{Revision: "aaaaaaaaaaaaaaaa", Err: fleet.ErrLeaseStale}, true, false, true},
		{"succeeded", stale, Result{Revision: "aaaaaaaaaaaaaaaa"}, false, false, false},
	} {
		res := tc.res
		f.lostDuring(tc.ctx, &res)
		if res.Interrupted != tc.interrupted || (res.NotRun != nil) != tc.notRun || errors.Is(res.Err, fleet.ErrLeaseStale) != tc.leaseStale {
			t.Errorf("%s: interrupted %v, not run %v, err %v; want %v, %v, ErrLeaseStale %v", tc.name, res.Interrupted, res.NotRun != nil, res.Err, tc.interrupted, tc.notRun, tc.leaseStale)
		}
	}
}

// A step whose context ended before it started starts no process.
func TestPipelineNotStartedWhenStopped(t *testing.T) {
	mark := filepath.Join(t.TempDir(), "ran")
	ctx, cancel := context.WithCancelCause(context.Background())
	stop := errors.New("stopped")
	cancel(stop)
	_, _, err := runPipeline(t, ctx, pipeline{{"touch", mark}, {"cat"}})
	if !errors.Is(err, stop) {
		t.Errorf("error %v, want the context's cause", err)
	}
	if _, err := os.Stat(mark); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a process ran: %v", err)
	}
}

// A reload may not move a fleet member's runs to another cluster than its
// leases: the global ceph-conf and ceph-user are fleet settings (a change
// was accepted, and the member's runs went to the new cluster while its
// leases stayed in the old one).
func TestFleetUnchangedCluster(t *testing.T) {
	base := config.Global{Fleet: "f", FleetMember: "a", RadosPool: "backy", Ceph: cephconn.Options{Conf: "/etc/ceph/a.conf", User: "backy"}}
	for what, change := range map[string]func(*config.Global){
		"ceph-conf":  func(g *config.Global) { g.Ceph.Conf = "/etc/ceph/b.conf" },
		"ceph-user":  func(g *config.Global) { g.Ceph.User = "other" },
		"rados-pool": func(g *config.Global) { g.RadosPool = "p2" },
	} {
		c := base
		change(&c)
		if err := fleetUnchanged(base, c); !errors.Is(err, ErrFleetChange) {
			t.Errorf("%s changed in a fleet: %v, want ErrFleetChange", what, err)
		}
		old, c2 := base, c
		old.Fleet, c2.Fleet = "", ""
		if err := fleetUnchanged(old, c2); err != nil {
			t.Errorf("%s changed outside a fleet: %v", what, err)
		}
	}
	if err := fleetUnchanged(base, base); err != nil {
		t.Errorf("no change: %v", err)
	}
}
