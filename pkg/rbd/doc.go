// Package rbd is backy's Ceph RBD source: it snapshots an image, streams
// what changed since the snapshot of the last backup as an extent stream
// (docs/extent-stream.md), and tidies up the snapshots it made.
//
// Two engines read the cluster. The librbd engine (package pkg/rbd/librbd,
// built with the tags "librbd,pacific") asks librbd for the changed extents
// (DiffIterate) and reads them with several reads in flight. The CLI engine
// runs `rbd export-diff` and parses its "rbd diff v1" output (pkg/rbddiff).
// Both hand their extents to the same emitter, which cuts them at the 4 MiB
// chunk boundaries of the repository, turns all-zero data into zero records
// and merges neighbouring zero ranges, so the two engines write byte for
// byte the same stream for the same snapshots.
package rbd

import "github.com/backy/backy/pkg/exitcode"

// SnapPrefix starts the name of every snapshot backy makes; backy removes
// only snapshots with this prefix, never anyone else's.
const SnapPrefix = "backy-"

// Errors of this package; details are wrapped around them.
var (
	ErrNotFound     = exitcode.New(exitcode.NotFound, "rbd: no such pool, image or snapshot")
	ErrBadName      = exitcode.New(exitcode.Usage, "rbd: bad image name")
	ErrNoLibrbd     = exitcode.New(exitcode.Usage, "rbd: this backy was built without librbd (build tags librbd,pacific); use --engine cli")
	ErrSnapExists   = exitcode.New(exitcode.Failure, "rbd: snapshot already exists")
	ErrCommand      = exitcode.New(exitcode.Failure, "rbd: command failed")
	ErrDiffMismatch = exitcode.New(exitcode.BadInput, "rbd: export-diff stream does not match the request")
	ErrCleanup      = exitcode.New(exitcode.Failure, "rbd: stream complete, but removing old snapshots failed")
)
