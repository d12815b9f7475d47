package schedule

import "time"

// Backoff says how long a job waits before it is retried after failing:
// Initial after the first failure, doubling with each further consecutive
// failure, never more than Max.
type Backoff struct {
	Initial time.Duration
	Max     time.Duration
}

// DefaultBackoff is the original backy's retry series: 2, 4, 8, ... minutes,
// capped at 6 hours.
var DefaultBackoff = Backoff{Initial: 2 * time.Minute, Max: 6 * time.Hour}

// Delay is the wait after the given number of consecutive failures: 0 for
// none. Zero or negative fields take DefaultBackoff's values.
func (b Backoff) Delay(failures int) time.Duration {
	if failures <= 0 {
		return 0
	}
	if b.Initial <= 0 {
		b.Initial = DefaultBackoff.Initial
	}
	if b.Max <= 0 {
		b.Max = DefaultBackoff.Max
	}
	d := b.Initial
	for i := 1; i < failures; i++ {
		if d > b.Max/2 {
			return b.Max
		}
		d *= 2
	}
	return min(d, b.Max)
}

// Retry counts a job's consecutive failures. Only a successful run resets it:
// a manual run bypasses the wait but its outcome is recorded like any other,
// so pressing "run" on a broken job does not restart the series at 2 minutes.
type Retry struct {
	Failures    int
	LastFailure time.Time
}

// Failed records a failed run that ended at time at.
func (r Retry) Failed(at time.Time) Retry {
	return Retry{Failures: r.Failures + 1, LastFailure: at}
}

// Succeeded records a successful run.
func (r Retry) Succeeded() Retry { return Retry{} }

// NotBefore is the earliest time the job may run again on its own: zero when
// it has not failed. Pass it to Plan.Hold.
func (r Retry) NotBefore(b Backoff) time.Time {
	if r.Failures <= 0 {
		return time.Time{}
	}
	return r.LastFailure.Add(b.Delay(r.Failures))
}
