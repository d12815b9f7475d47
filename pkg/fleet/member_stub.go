//go:build !librbd

package fleet

import (
	"context"
	"time"
)

// Available reports whether this build can join a fleet.
const Available = false

// Member is this daemon's part in a fleet; this build has none.
type Member struct{}

// Join fails: this build has no RADOS support.
func Join(context.Context, Options) (*Member, error) { return nil, ErrNoRados }

func (*Member) SetJobs([]string)                            {}
func (*Member) Changed() <-chan struct{}                    { return nil }
func (*Member) Owns(string) bool                            { return false }
func (*Member) Owned() []string                             { return nil }
func (*Member) RenewedWithin(string, time.Duration) bool    { return false }
func (*Member) Members() []string                           { return nil }
func (*Member) Ops() uint64                                 { return 0 }
func (*Member) Confirm(string) error                        { return ErrNoRados }
func (*Member) SetBusy(string, bool)                        {}
func (*Member) Slot(string) (func(), error)                 { return nil, ErrNoRados }
func (*Member) Publish([]byte) error                        { return ErrNoRados }
func (*Member) Views() (map[string][]byte, []string, error) { return nil, nil, ErrNoRados }
func (*Member) Leave()                                      {}
