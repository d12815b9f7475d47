// Package store turns an extent stream into a new revision of a repository:
// it assembles records into 4 MiB chunks, hashes, zero-checks and
// compresses them on every core, writes only chunks the repository does not
// have, and publishes the revision only after the END record has been
// verified and every new chunk is durable.
package store

import "github.com/backy/backy/pkg/exitcode"

// Errors of this package.
var (
	ErrNoParent     = exitcode.New(exitcode.BadInput, "store: differential stream but the repository has no revision")
	ErrWrongBase    = exitcode.New(exitcode.BadInput, "store: differential stream on the wrong base")
	ErrDistrusted   = exitcode.New(exitcode.BadInput, "store: differential stream on a distrusted parent; the source must send a full stream")
	ErrSampleStream = exitcode.New(exitcode.BadInput, "store: a sample stream cannot be stored (use backy-store verify --against)")
)
