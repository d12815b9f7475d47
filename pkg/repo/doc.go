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

import "errors"

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
	ErrNotRepository = errors.New("repo: not a backy repository")
	ErrFormat        = errors.New("repo: unsupported repository format")
	ErrBusy          = errors.New("repo: locked by another process")
	ErrNoRevision    = errors.New("repo: no such revision")
	ErrAmbiguous     = errors.New("repo: ambiguous revision spec")
	ErrCorruptChunk  = errors.New("repo: corrupt chunk")
	ErrMissingChunk  = errors.New("repo: missing chunk")
	ErrCorruptIndex  = errors.New("repo: corrupt index")
	ErrCorruptMeta   = errors.New("repo: corrupt metadata")
	ErrBadLocation   = errors.New("repo: bad repository location")
)
