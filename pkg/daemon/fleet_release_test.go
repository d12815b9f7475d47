//go:build librbd

package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/backy/backy/internal/logtest"
	"github.com/backy/backy/pkg/cephconn"
	"github.com/backy/backy/pkg/config"
	"github.com/backy/backy/pkg/fleet"
	"github.com/backy/backy/pkg/rbd/cephtest"
)

// A fleet run gives its claim back (its run slot, its job no longer busy)
// before it tells the loop it ended. The loop leaves the fleet as soon as
// the last run's end is in (shutdown), and Leave destroys the member's I/O
// context: a slot released after that was an operation on a destroyed
// librados context, or no release at all when the process exited first,
// which kept the slot from the other members for a lease. Here the loop
// does not take the run's end: the slot must be free all the same.
func TestFleetRunReleasesBeforeItEnds(t *testing.T) {
	conf := cephtest.Start(t)
	pool := cephtest.Pool(t, conf, fmt.Sprintf("daemon-fleet-%d", os.Getpid()))
	lease := 4 * time.Second
	m, err := fleet.Join(context.Background(), fleet.Options{Ceph: cephconn.Options{Conf: conf}, Pool: pool,
		Fleet: fmt.Sprintf("f%d", os.Getpid()), Member: "m1", Lease: lease, RunLimit: 1, Log: logtest.T(t, "m1")})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Leave()
	m.SetJobs([]string{"a", "b"})
	for deadline := time.Now().Add(5 * lease); !m.Owns("a") || !m.Owns("b"); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("m1 owns %v, not a and b, after %s", m.Owned(), 5*lease)
		}
	}
	runner := &fakeRunner{t: t, hold: map[string]chan error{}, started: make(chan string, 1)}
	log, err := OpenLog("", io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	d := &daemon{runner: runner, log: log, fleet: &fleetState{m: m, lease: lease}, done: make(chan finished), runCtx: context.Background()}
	go d.execute(launch{job: config.Job{Name: "a", Directory: t.TempDir()}, stage: new(atomic.Value)})
	<-runner.started
	// The run of a ends at once; its end is not taken yet.
	var slotErr error
	for deadline := time.Now().Add(lease); ; time.Sleep(50 * time.Millisecond) {
		release, err := m.Slot("b")
		slotErr = err
		if err == nil {
			release()
			break
		}
		if !errors.Is(err, fleet.ErrRunLimit) || time.Now().After(deadline) {
			break
		}
	}
	f := <-d.done
	if f.res.Err != nil || f.res.Revision == "" {
		t.Errorf("run of a: %+v", f.res)
	}
	if slotErr != nil && !errors.Is(slotErr, fleet.ErrRunLimit) {
		t.Fatal(slotErr)
	}
	if slotErr != nil {
		t.Fatalf("the ended run of a still held the fleet's one run slot before the loop took its end: %v", slotErr)
	}
}
