// Package upkeep is what backy-store does to a repository after a backup:
// status reports, verification, distrust, tags, forgetting and expiring
// revisions, and purging chunks no revision needs.
//
// Locks (pkg/repo): everything that reads chunks holds the chunks lock
// shared; purge holds the store and chunks locks exclusively; every change
// of revision metadata re-reads the revision under the meta lock, so two
// commands changing the same revision never lose each other's change.
package upkeep

import "errors"

// Errors of this package; details are wrapped around them.
var (
	ErrDamaged     = errors.New("upkeep: damage found")
	ErrMismatch    = errors.New("upkeep: revision does not match the stream")
	ErrTimeout     = errors.New("upkeep: time budget exceeded")
	ErrNoMatch     = errors.New("upkeep: no revision matches")
	ErrNoJob       = errors.New("upkeep: no such job")
	ErrBadDate     = errors.New("upkeep: bad date")
	ErrBadSchedule = errors.New("upkeep: bad schedule")
	ErrNewest      = errors.New("upkeep: refusing to forget the newest revision")
	ErrSelection   = errors.New("upkeep: bad revision selection")
	ErrStreamKind  = errors.New("upkeep: cannot compare a differential stream")
	ErrPurgeUnsafe = errors.New("upkeep: purge refused")
)
