// Package upkeep is what backy-store does to a repository after a backup:
// status reports, verification, distrust, tags, forgetting and expiring
// revisions, and purging chunks no revision needs.
//
// Locks (pkg/repo): everything that reads chunks holds the chunks lock
// shared; purge holds the store and chunks locks exclusively; every change
// of revision metadata re-reads the revision under the meta lock, so two
// commands changing the same revision never lose each other's change.
package upkeep

import "github.com/backy/backy/pkg/exitcode"

// Errors of this package; details are wrapped around them.
var (
	ErrDamaged        = exitcode.New(exitcode.Damaged, "upkeep: damage found")
	ErrMismatch       = exitcode.New(exitcode.Damaged, "upkeep: revision does not match the stream")
	ErrTimeout        = exitcode.New(exitcode.Failure, "upkeep: time budget exceeded")
	ErrNoMatch        = exitcode.New(exitcode.NotFound, "upkeep: no revision matches")
	ErrJobNotInConfig = exitcode.New(exitcode.NotFound, "upkeep: no such job")
	ErrBadDate        = exitcode.New(exitcode.Usage, "upkeep: bad date")
	ErrBadSchedule    = exitcode.New(exitcode.Usage, "upkeep: bad schedule")
	ErrNewest         = exitcode.New(exitcode.Usage, "upkeep: refusing to forget the newest revision")
	ErrSelection      = exitcode.New(exitcode.Usage, "upkeep: bad revision selection")
	ErrStreamKind     = exitcode.New(exitcode.BadInput, "upkeep: cannot compare a differential stream")
	ErrPurgeUnsafe    = exitcode.New(exitcode.Failure, "upkeep: purge refused")
)
