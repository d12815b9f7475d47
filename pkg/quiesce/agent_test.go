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

	"github.com/backy/backy/internal/logtest"
	"github.com/backy/backy/pkg/quiesce"
)

// makeSnap is what an agent does to make the fake snapshot: create it
// exclusively, failing when it exists, as rbd snap create does.
func makeSnap(s *fakeSnap) string { return fmt.Sprintf("(set -C; : > %s)", s.path) }

func agentOpts(t *testing.T, cmd, fallback string, timeout time.Duration) quiesce.Options {
	return quiesce.Options{SnapshotCommand: cmd, Fallback: fallback, Timeout: timeout, Poll: 50 * time.Millisecond, Log: logtest.T(t, "quiesce")}
}

func TestAgent(t *testing.T) {
	t.Run("slow", func(t *testing.T) {
		s := newSnap(t)
		res, err := quiesce.Snapshot(context.Background(), agentOpts(t, "sleep 0.5; "+makeSnap(s), "", 5*time.Second), s)
		if err != nil || res.Consistency != quiesce.Agent || res.Reason != "" {
			t.Fatalf("got %+v, %v; want the agent's snapshot", res, err)
		}
		if s.creates != 0 {
			t.Error("backy made a snapshot although the agent did")
		}
	})
	t.Run("environment", func(t *testing.T) {
		s := newSnap(t)
		opt := agentOpts(t, `[ "$BACKY_SNAPSHOT" = backy-x ] && `+makeSnap(s), "fail", 5*time.Second)
		opt.Env = []string{"BACKY_SNAPSHOT=backy-x"}
		if res, err := quiesce.Snapshot(context.Background(), opt, s); err != nil || res.Consistency != quiesce.Agent {
			t.Fatalf("got %+v, %v", res, err)
		}
	})
	t.Run("asynchronous", func(t *testing.T) {
		// The command asks and exits 0; the snapshot comes later.
		s := newSnap(t)
		res, err := quiesce.Snapshot(context.Background(), agentOpts(t, "(sleep 0.5; "+makeSnap(s)+") >/dev/null 2>&1 &", "fail", 5*time.Second), s)
		if err != nil || res.Consistency != quiesce.Agent {
			t.Fatalf("got %+v, %v", res, err)
		}
	})
	for _, c := range []struct {
		name, cmd, reason string
	}{
		{"never", "true", "no snapshot within 1s"},
		{"non-zero", "echo agent down >&2; exit 4", "snapshot command failed"},
		{"hangs", "sleep 60", "no snapshot within 1s"},
	} {
		t.Run(c.name+"/crash", func(t *testing.T) {
			s := newSnap(t)
			start := time.Now()
			res, err := quiesce.Snapshot(context.Background(), agentOpts(t, c.cmd, "crash", time.Second), s)
			if err != nil || res.Consistency != quiesce.Crash || !strings.Contains(res.Reason, c.reason) {
				t.Fatalf("got %+v, %v; want crash because %q", res, err, c.reason)
			}
			if ok, _ := s.Exists(context.Background()); !ok {
				t.Fatal("no fallback snapshot")
			}
			if took := time.Since(start); took > 3*time.Second {
				t.Errorf("took %s with a timeout of 1s", took)
			}
		})
		t.Run(c.name+"/fail", func(t *testing.T) {
			s := newSnap(t)
			_, err := quiesce.Snapshot(context.Background(), agentOpts(t, c.cmd, "fail", time.Second), s)
			if !errors.Is(err, quiesce.ErrNoSnapshot) || !strings.Contains(err.Error(), c.reason) {
				t.Fatalf("err %v, want ErrNoSnapshot because %q", err, c.reason)
			}
			if ok, _ := s.Exists(context.Background()); ok {
				t.Fatal("a snapshot exists after the failure")
			}
		})
	}
}

// TestAgentLate: an agent whose snapshot comes after the timeout. With the
// crash fallback backy takes the name first and the agent's create fails:
// there is one snapshot, backy's. With the fail fallback, one that exists
// when backy gives up is removed.
func TestAgentLate(t *testing.T) {
	t.Run("crash", func(t *testing.T) {
		s := newSnap(t)
		agentErr := filepath.Join(t.TempDir(), "agent-failed")
		cmd := fmt.Sprintf("(sleep 1.5; %s || touch %s) >/dev/null 2>&1 &", makeSnap(s), agentErr)
		res, err := quiesce.Snapshot(context.Background(), agentOpts(t, cmd, "crash", time.Second), s)
		if err != nil || res.Consistency != quiesce.Crash {
			t.Fatalf("got %+v, %v", res, err)
		}
		time.Sleep(2 * time.Second)
		if _, err := os.Stat(agentErr); err != nil {
			t.Error("the late agent's snapshot did not fail although backy had taken the name")
		}
	})
	t.Run("adopted", func(t *testing.T) {
		// The agent's snapshot appears between backy giving up and its own
		// create: it is adopted.
		s := newSnap(t)
		s.onCreate = func() { os.WriteFile(s.path, nil, 0o644) }
		res, err := quiesce.Snapshot(context.Background(), agentOpts(t, "true", "crash", time.Second), s)
		if err != nil || res.Consistency != quiesce.Agent || !strings.Contains(res.Reason, "adopted") {
			t.Fatalf("got %+v, %v; want the agent's late snapshot adopted", res, err)
		}
	})
	t.Run("fail", func(t *testing.T) {
		s := newSnap(t)
		// The snapshot appears while backy gives up: after the wait's
		// last look, before the clean-up.
		cmd := "sleep 60"
		opt := agentOpts(t, cmd, "fail", time.Second)
		opt.Poll = time.Hour
		go func() { time.Sleep(900 * time.Millisecond); os.WriteFile(s.path, nil, 0o644) }()
		_, err := quiesce.Snapshot(context.Background(), opt, s)
		if !errors.Is(err, quiesce.ErrNoSnapshot) {
			t.Fatalf("err %v", err)
		}
		if ok, _ := s.Exists(context.Background()); ok {
			t.Fatal("the late snapshot was left behind")
		}
	})
}

func TestBadOptions(t *testing.T) {
	for _, o := range []quiesce.Options{
		{FreezeCommand: "x"},
		{ThawCommand: "x"},
		{FreezeCommand: "x", ThawCommand: "y", SnapshotCommand: "z"},
		{SnapshotCommand: "z", GuestAgent: "/s"},
		{SnapshotCommand: "z", Fallback: "maybe"},
	} {
		if _, err := quiesce.Snapshot(context.Background(), o, newSnap(t)); !errors.Is(err, quiesce.ErrBadOptions) {
			t.Errorf("%+v: err %v, want ErrBadOptions", o, err)
		}
	}
}
