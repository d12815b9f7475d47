package rbd

import "context"

// Engine is one way of talking to a Ceph cluster: librbd (pkg/rbd/librbd)
// or the rbd command line (CLI).
type Engine interface {
	// Name is "librbd" or "cli", for messages.
	Name() string
	// Snapshots lists the image's snapshots in the order they were made.
	// A missing pool or image is ErrNotFound.
	Snapshots(ctx context.Context, img Image) ([]Snap, error)
	// CreateSnapshot snapshots the image head as img.Snap.
	CreateSnapshot(ctx context.Context, img Image) error
	// RemoveSnapshot removes the snapshot img.Snap.
	RemoveSnapshot(ctx context.Context, img Image) error
	// Diff reads the image at req.Image.Snap and hands what differs from
	// req.From (everything that may hold data, when From is "") to sink,
	// in ascending order: first Begin with the image size, then Zero and
	// Data calls. An engine may skip what the sink does not want.
	Diff(ctx context.Context, req DiffRequest, sink Sink) error
	// Close releases the engine's connection.
	Close() error
}

// Snap is one snapshot of an image.
type Snap struct {
	ID   uint64
	Name string
}

// DiffRequest says what Engine.Diff reads.
type DiffRequest struct {
	Image       Image  // Snap must be set
	From        string // base snapshot; "" for all data
	WholeObject bool   // report whole changed objects, as rbd export-diff --whole-object
	// Sample says the sink wants only some whole 4 MiB blocks (Sink.Wanted)
	// of the image, From is "": an engine may read those blocks directly
	// instead of asking for a diff.
	Sample bool
}

// Sink receives the extents an engine reads (see emitter).
type Sink interface {
	// Begin is called once, before anything else, with the image size.
	Begin(size int64) error
	// Zero says that length bytes at off read as zeros.
	Zero(off, length int64) error
	// Data gives the bytes at off; p is only valid during the call.
	Data(off int64, p []byte) error
	// Wanted reports whether the sink needs the data of [off, end); an
	// engine may skip reading what it does not.
	Wanted(off, end int64) bool
}
