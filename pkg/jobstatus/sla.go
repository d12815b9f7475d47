package jobstatus

import (
	"time"

	"github.com/backy/backy/pkg/schedule"
)

// SLAFactor is how much older than its shortest interval a job's newest
// trusted revision may get before the job is outside its SLA. Half an
// interval of slack absorbs a slow run or a short outage without an alarm,
// while a run missed entirely is noticed.
const SLAFactor = 1.5

// SLA states of a job, as written to the status file.
const (
	SLAOK      = "ok"      // newest trusted revision young enough
	SLAOutside = "outside" // newest trusted revision too old
	SLANone    = "none"    // no trusted revision at all
)

// SLALimit is the age a job's newest trusted revision may reach.
func SLALimit(s schedule.Schedule) time.Duration {
	return time.Duration(float64(s.Shortest()) * SLAFactor)
}

// SLAState judges a job whose newest trusted (trusted or verified) revision
// was taken at newest; zero means it has none. A job without any trusted
// revision is never within its SLA, however new it is: a job that has not
// produced a backup yet is the most urgent one there is.
func SLAState(newest time.Time, s schedule.Schedule, now time.Time) string {
	switch {
	case newest.IsZero():
		return SLANone
	case now.Sub(newest) < SLALimit(s):
		return SLAOK
	}
	return SLAOutside
}
