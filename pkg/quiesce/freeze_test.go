package quiesce_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/backy/backy/internal/freezetest"
	"github.com/backy/backy/internal/logtest"
	"github.com/backy/backy/pkg/quiesce"
)

// TestFreezeCommands freezes a loop-mounted ext4 image with a writer in it
// around the snapshot: the guest is frozen while the snapshot is made and
// thawed after, and the recorded freeze time covers what the writer saw.
func TestFreezeCommands(t *testing.T) {
	g := freezetest.New(t)
	snap := newSnap(t)
	snap.delay = 300 * time.Millisecond
	frozenAtSnapshot := false
	snap.onCreate = func() { frozenAtSnapshot = g.Frozen(100 * time.Millisecond) }
	start := time.Now()
	res, err := quiesce.Snapshot(context.Background(), quiesce.Options{
		FreezeCommand: g.FreezeCommand(), ThawCommand: g.ThawCommand(), Timeout: 10 * time.Second, Log: logtest.T(t, "quiesce"),
	}, snap)
	if err != nil {
		t.Fatal(err)
	}
	if res.Consistency != quiesce.Frozen || res.Reason != "" {
		t.Errorf("result %+v, want frozen", res)
	}
	if !frozenAtSnapshot {
		t.Error("the guest was not frozen while the snapshot was made")
	}
	if ok, _ := snap.Exists(context.Background()); !ok {
		t.Error("no snapshot")
	}
	g.ThawedWithin(t, time.Second)
	stall := g.LongestStall(start)
	t.Logf("recorded freeze %s, longest write stall in the guest %s", res.Frozen, stall)
	if res.Frozen < snap.delay || res.Frozen > 5*time.Second {
		t.Errorf("recorded freeze time %s, want at least the snapshot's %s", res.Frozen, snap.delay)
	}
	if stall < snap.delay/2 {
		t.Errorf("the writer in the guest waited at most %s: was it frozen?", stall)
	}
	if stall > res.Frozen+200*time.Millisecond {
		t.Errorf("the guest stalled %s, longer than the recorded freeze %s", stall, res.Frozen)
	}
}

// TestFreezeFails: a freeze command that fails is followed by the thaw
// (the freeze was attempted), then by a crash-consistent snapshot with the
// reason, or by a failure with fallback "fail".
func TestFreezeFails(t *testing.T) {
	for _, fallback := range []string{quiesce.FallbackCrash, quiesce.FallbackFail} {
		t.Run(fallback, func(t *testing.T) {
			dir := t.TempDir()
			marker := filepath.Join(dir, "thawed")
			snap := newSnap(t)
			res, err := quiesce.Snapshot(context.Background(), quiesce.Options{
				FreezeCommand: "echo cannot freeze >&2; exit 3", ThawCommand: "touch " + marker,
				Fallback: fallback, Timeout: 5 * time.Second, Log: logtest.T(t, "quiesce"),
			}, snap)
			if _, serr := os.Stat(marker); serr != nil {
				t.Error("the thaw did not run after the failed freeze")
			}
			exists, _ := snap.Exists(context.Background())
			if fallback == quiesce.FallbackFail {
				if !errors.Is(err, quiesce.ErrFreeze) || exists {
					t.Fatalf("err %v, snapshot %v; want ErrFreeze and no snapshot", err, exists)
				}
				return
			}
			if err != nil || res.Consistency != quiesce.Crash || !exists ||
				!strings.Contains(res.Reason, "freeze failed") || !strings.Contains(res.Reason, "cannot freeze") {
				t.Fatalf("got %+v, %v (snapshot %v), want a crash snapshot with the freeze's error as reason", res, err, exists)
			}
		})
	}
}

// TestFreezeTimesOut: a freeze command that freezes and then hangs is
// killed at the timeout and the guest is thawed.
func TestFreezeTimesOut(t *testing.T) {
	g := freezetest.New(t)
	snap := newSnap(t)
	start := time.Now()
	res, err := quiesce.Snapshot(context.Background(), quiesce.Options{
		FreezeCommand: g.FreezeCommand() + " && sleep 60", ThawCommand: g.ThawCommand(),
		Timeout: 2 * time.Second, Log: logtest.T(t, "quiesce"),
	}, snap)
	took := time.Since(start)
	if err != nil || res.Consistency != quiesce.Crash || !strings.Contains(res.Reason, "timed out") {
		t.Fatalf("got %+v, %v; want a crash snapshot after the timed-out freeze", res, err)
	}
	g.ThawedWithin(t, time.Second)
	if took > 6*time.Second {
		t.Errorf("took %s with a timeout of 2s", took)
	}
}

// TestSnapshotTimesOut: a snapshot that does not come within the timeout
// is given up, the guest thawed, and the late snapshot removed.
func TestSnapshotTimesOut(t *testing.T) {
	g := freezetest.New(t)
	snap := newSnap(t)
	snap.delay = 3 * time.Second
	snap.onCreate = func() {}
	_, err := quiesce.Snapshot(context.Background(), quiesce.Options{
		FreezeCommand: g.FreezeCommand(), ThawCommand: g.ThawCommand(), Timeout: time.Second, Log: logtest.T(t, "quiesce"),
	}, &uncancellable{snap})
	if !errors.Is(err, quiesce.ErrTimeout) {
		t.Fatalf("err %v, want ErrTimeout", err)
	}
	g.ThawedWithin(t, time.Second)
	if ok, _ := snap.Exists(context.Background()); ok {
		t.Error("the snapshot made after the thaw was left behind")
	}
}

// uncancellable is a snapshot that ignores its context, as librbd does.
type uncancellable struct{ *fakeSnap }

func (u *uncancellable) Create(ctx context.Context) error {
	return u.fakeSnap.Create(context.Background())
}

// TestThawRetried: a thaw that fails is retried; when every attempt fails
// the run fails with ErrThaw.
func TestThawRetried(t *testing.T) {
	g := freezetest.New(t)
	counter := filepath.Join(t.TempDir(), "n")
	flaky := fmt.Sprintf(`n=$(cat %[1]s 2>/dev/null || echo 0); echo $((n+1)) > %[1]s; [ $n -ge 2 ] && { %[2]s; }`, counter, g.ThawCommand())
	res, err := quiesce.Snapshot(context.Background(), quiesce.Options{
		FreezeCommand: g.FreezeCommand(), ThawCommand: flaky, Timeout: 5 * time.Second, Log: logtest.T(t, "quiesce"),
	}, newSnap(t))
	if err != nil || res.Consistency != quiesce.Frozen {
		t.Fatalf("got %+v, %v; want frozen after the third thaw attempt", res, err)
	}
	g.ThawedWithin(t, time.Second)

	snap := newSnap(t)
	_, err = quiesce.Snapshot(context.Background(), quiesce.Options{
		FreezeCommand: g.FreezeCommand(), ThawCommand: "sleep 10", Timeout: time.Second, Log: logtest.T(t, "quiesce"),
	}, snap)
	if !errors.Is(err, quiesce.ErrThaw) || !strings.Contains(err.Error(), "THAW FAILED") {
		t.Fatalf("err %v, want the loud ErrThaw", err)
	}
	if ok, _ := snap.Exists(context.Background()); ok {
		t.Error("a snapshot was kept although the run failed")
	}
	if !g.Frozen(200 * time.Millisecond) {
		t.Error("the guest is thawed although every thaw hung: the test proves nothing")
	}
	// freezetest's clean-up thaws it.
}

// The kill runs - backy-extract SIGKILLed at random moments of the freeze
// and the snapshot, 0 guests left frozen - run the real binary on the test
// cluster: TestExtractKilledWhileFrozen in cmd/backy-schedule.

// TestSnapshotFails: a snapshot that fails while the guest is frozen fails
// the run, and the guest is thawed.
func TestSnapshotFails(t *testing.T) {
	g := freezetest.New(t)
	snap := newSnap(t)
	os.WriteFile(snap.path, nil, 0o644) // the name is taken: Create fails
	_, err := quiesce.Snapshot(context.Background(), quiesce.Options{
		FreezeCommand: g.FreezeCommand(), ThawCommand: g.ThawCommand(), Timeout: 10 * time.Second, Log: logtest.T(t, "quiesce"),
	}, snap)
	if !errors.Is(err, os.ErrExist) {
		t.Fatalf("err %v, want the snapshot's error", err)
	}
	g.ThawedWithin(t, time.Second)
}
