// Package repo is the backy repository: content-addressed chunks, and
// revisions made of a metadata file and a chunk index. It lives in one
// self-contained directory per job, or in a RADOS pool whose chunks every
// job shares (Backend). The format is specified in docs/repository.md.
//
// Every chunk read is verified against its BLAKE3 hash; every object is
// published atomically (in a directory: write-temp, fsync, rename,
// fsync-directory), so a crash at any instant leaves the previous
// revisions intact and no half revision.
package repo

import "github.com/backy/backy/pkg/exitcode"

// ChunkSize is the fixed chunk size of format 1 (aligned with RBD objects).
const ChunkSize = 4 << 20

// FormatVersion is the repository format this package writes: format 2
// has sealed revision metadata. Repositories of format 1 (unsealed
// metadata) are read too, and become format 2 when next written
// (docs/repository.md, "Versions").
const FormatVersion = 2

// legacyFormat is the repository format before sealed metadata.
const legacyFormat = 1

// IndexVersion is the version of the index file layout.
const IndexVersion = 1

// Errors of this package; details are wrapped around them.
var (
	ErrNotRepository = exitcode.New(exitcode.NotFound, "repo: not a backy repository")
	ErrFormat        = exitcode.New(exitcode.BadInput, "repo: unsupported repository format")
	ErrBusy          = exitcode.New(exitcode.Busy, "repo: locked by another process")
	ErrNoRevision    = exitcode.New(exitcode.NotFound, "repo: no such revision")
	ErrAmbiguous     = exitcode.New(exitcode.NotFound, "repo: ambiguous revision spec")
	ErrCorruptChunk  = exitcode.New(exitcode.Damaged, "repo: corrupt chunk")
	ErrMissingChunk  = exitcode.New(exitcode.Damaged, "repo: missing chunk")
	ErrCorruptIndex  = exitcode.New(exitcode.Damaged, "repo: corrupt index")
	ErrCorruptMeta   = exitcode.New(exitcode.Damaged, "repo: corrupt metadata")
	ErrBadLocation   = exitcode.New(exitcode.Usage, "repo: bad repository location")
	ErrNotOwned      = exitcode.New(exitcode.Failure, "repo: not this user's own repository")
)
