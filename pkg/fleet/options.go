package fleet

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/backy/backy/pkg/cephconn"
	"github.com/backy/backy/pkg/exitcode"
)

// DefaultLease is how long a fleet lease outlives its holder's last
// renewal.
const DefaultLease = 30 * time.Second

// Errors of the fleet.
var (
	// ErrNotOwner: this daemon does not hold the job's lease (any more).
	ErrNotOwner = exitcode.New(exitcode.Busy, "fleet: job owned by another member")
	// ErrLeaseStale: this daemon has not renewed the job's lease recently
	// enough to go on with it, whoever holds the lease now.
	ErrLeaseStale = exitcode.New(exitcode.Busy, "fleet: job lease not renewed in time")
	// ErrRunLimit: every run slot of the fleet is taken.
	ErrRunLimit = exitcode.New(exitcode.Busy, "fleet: run limit reached")
	// ErrNoRados: built without the RADOS backend.
	ErrNoRados = exitcode.New(exitcode.Usage, "fleet: this build has no RADOS support (build tags librbd,pacific)")
)

// Options say which fleet to join, as whom.
type Options struct {
	Ceph     cephconn.Options
	Pool     string        // the RADOS pool holding the fleet's objects
	Fleet    string        // the fleet's name
	Member   string        // this daemon's name, unique in the fleet
	Lease    time.Duration // every lease of the fleet
	RunLimit int           // run slots of the fleet; 0: no limit
	Log      *slog.Logger  // nil: nothing is logged
	// Stalled, if set, reports that the daemon this member works for has
	// stopped working (its loop has not come round for a while): the
	// member then renews nothing, as if paused, so that its leases run out
	// and the others take its jobs, instead of holding jobs nobody runs.
	Stalled func() bool
}

func (o Options) check() error {
	switch {
	case o.Pool == "" || o.Fleet == "" || o.Member == "":
		return errors.New("fleet: pool, fleet and member name are needed")
	case o.Lease < time.Second:
		return fmt.Errorf("fleet: lease %s is shorter than a second", o.Lease)
	}
	return nil
}

func (o Options) log() *slog.Logger {
	if o.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return o.Log
}

const omapMember = "member." // fleet object omap: member.NAME = its published view
