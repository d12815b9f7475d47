// Package source turns image files and block devices into extent streams
// (docs/extent-stream.md): full streams for backups and sample streams for
// checking a backup against its source.
//
// Holes are found with SEEK_DATA/SEEK_HOLE and never read; all-zero blocks
// become zero records; records are aligned to the 4 MiB chunks of the
// repository so that backy-store never has to split them.
package source

import "github.com/backy/backy/pkg/exitcode"

// Errors of this package.
var (
	ErrNotImage     = exitcode.New(exitcode.BadInput, "source: not an image file or block device")
	ErrShrunk       = exitcode.New(exitcode.BadInput, "source: image shrank while it was read")
	ErrSizeNeeded   = exitcode.New(exitcode.Usage, "source: a pipe needs --size")
	ErrSizeMismatch = exitcode.New(exitcode.BadInput, "source: input size does not match --size")
)
