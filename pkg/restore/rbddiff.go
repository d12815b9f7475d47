package restore

import (
	"context"
	"io"

	"github.com/backy/backy/pkg/rbddiff"
	"github.com/backy/backy/pkg/repo"
)

// RBDDiff writes the revision as an "rbd diff v1" stream of the whole
// image (docs/rbd-diff.md) for `rbd import-diff - POOL/IMAGE`: the size
// record, then a write record of at most one chunk (4 MiB) for every chunk
// that holds data and one zero record for every run of zero chunks. The
// zero records matter: the target image may hold old data there. The
// stream names no snapshots, so import-diff applies it to the image head
// and makes no snapshot. A failed restore leaves the stream without its
// end record, which rbd import-diff refuses.
func RBDDiff(ctx context.Context, r *repo.Repo, rev *repo.Revision, ix *repo.Index, w io.Writer, opt Options) error {
	dw := rbddiff.NewWriter(w)
	if err := dw.WriteHeader(&rbddiff.Header{Version: 1, Size: uint64(ix.Size)}); err != nil {
		return err
	}
	err := records(ctx, r, rev, ix, opt,
		func(off, length int64) error { return dw.WriteZero(uint64(off), uint64(length)) },
		func(off int64, data []byte) error { return dw.WriteData(uint64(off), data) })
	if err == nil {
		err = dw.Close()
	}
	return err
}
