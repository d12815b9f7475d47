package jobstatus

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/backy/backy/pkg/schedule"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func TestStatusFileRoundTripsOneJobPerLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "status")
	st := &Status{Format: Format, Written: t0, Started: t0, PID: 7, Version: "v", Config: "/etc/backy.conf",
		StatusInterval: 30, WorkerLimit: 2, Jobs: map[string]Job{
			"vm1": {Schedule: "default", Failures: 2, LastError: "backup: backy-extract exited 6", NextTags: []string{"daily"}, SLA: SLAOK, NextDue: t0},
			"vm2": {Schedule: "default", SLA: SLANone},
		}}
	if err := Write(path, st); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	if !json.Valid(b) || bytes.Count(b, []byte("\n")) != 4 {
		t.Fatalf("status file is not JSON with one job a line:\n%s", b)
	}
	got, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, st) {
		t.Errorf("read back\n%+v\nwant\n%+v", got, st)
	}
	if leftovers, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".status.tmp*")); len(leftovers) > 0 {
		t.Errorf("temporary files left: %v", leftovers)
	}
}

func TestReadStatusErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := Read(filepath.Join(dir, "none")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	bad := filepath.Join(dir, "bad")
	os.WriteFile(bad, []byte(`{"format": 99}`), 0o644)
	if _, err := Read(bad); !errors.Is(err, ErrBadFile) {
		t.Errorf("format 99: %v", err)
	}
	os.WriteFile(bad, []byte(`{"format": 1`), 0o644)
	if _, err := Read(bad); !errors.Is(err, ErrBadFile) {
		t.Errorf("truncated: %v", err)
	}
}

func TestSLAState(t *testing.T) {
	s, err := schedule.New(schedule.Rule{Tag: "daily", Interval: 24 * time.Hour, Keep: 9},
		schedule.Rule{Tag: "weekly", Interval: 7 * 24 * time.Hour, Keep: 5})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		newest time.Time
		want   string
	}{
		{time.Time{}, SLANone},
		{t0.Add(-35 * time.Hour), SLAOK},
		{t0.Add(-36 * time.Hour), SLAOutside},
	} {
		if got := SLAState(tc.newest, s, t0); got != tc.want {
			t.Errorf("newest %s: %s, want %s", tc.newest, got, tc.want)
		}
	}
}
