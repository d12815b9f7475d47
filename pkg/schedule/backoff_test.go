package schedule

import (
	"testing"
	"time"
)

func TestBackoffDelay(t *testing.T) {
	for _, tc := range []struct {
		b        Backoff
		failures int
		want     time.Duration
	}{
		{DefaultBackoff, 0, 0},
		{DefaultBackoff, -1, 0},
		{DefaultBackoff, 1, 2 * time.Minute},
		{DefaultBackoff, 2, 4 * time.Minute},
		{DefaultBackoff, 3, 8 * time.Minute},
		{DefaultBackoff, 8, 256 * time.Minute},
		{DefaultBackoff, 9, 6 * time.Hour},
		{DefaultBackoff, 1 << 30, 6 * time.Hour},
		{Backoff{}, 2, 4 * time.Minute},
		{Backoff{Initial: time.Second, Max: 10 * time.Second}, 4, 8 * time.Second},
		{Backoff{Initial: time.Second, Max: 10 * time.Second}, 5, 10 * time.Second},
		{Backoff{Initial: time.Hour, Max: time.Minute}, 1, time.Minute},
		{Backoff{Initial: time.Second, Max: 1<<63 - 1}, 200, 1<<63 - 1},
	} {
		if got := tc.b.Delay(tc.failures); got != tc.want {
			t.Errorf("%+v.Delay(%d) = %v, want %v", tc.b, tc.failures, got, tc.want)
		}
	}
}

func TestRetry(t *testing.T) {
	t0 := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	var r Retry
	if !r.NotBefore(DefaultBackoff).IsZero() {
		t.Fatal("a job that never failed is held back")
	}
	r = r.Failed(t0)
	if got, want := r.NotBefore(DefaultBackoff), t0.Add(2*time.Minute); !got.Equal(want) {
		t.Errorf("after 1 failure NotBefore = %v, want %v", got, want)
	}
	// An operator runs the job by hand and it fails again: the series goes
	// on doubling instead of starting over.
	manual := t0.Add(time.Minute)
	r = r.Failed(manual)
	if got, want := r.NotBefore(DefaultBackoff), manual.Add(4*time.Minute); !got.Equal(want) {
		t.Errorf("after a failed manual run NotBefore = %v, want %v", got, want)
	}
	r = r.Failed(t0.Add(time.Hour))
	if r.Failures != 3 {
		t.Errorf("Failures = %d, want 3", r.Failures)
	}
	if r = r.Succeeded(); r != (Retry{}) || !r.NotBefore(DefaultBackoff).IsZero() {
		t.Errorf("after success Retry = %+v", r)
	}
}
