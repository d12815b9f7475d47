package restore

import (
	"context"
	"fmt"
	"runtime"

	"github.com/backy/backy/pkg/ordered"
	"github.com/backy/backy/pkg/repo"
)

// fetched is one chunk on its way to the output, in image order.
type fetched struct {
	n    int64
	data []byte // nil for a zero chunk; otherwise ChunkSize verified bytes
}

// each calls fn for every chunk in order with its bytes inside the image
// (nil for zero chunks), stopping at the first error. Workers read,
// decompress and verify the chunks ahead of fn, each into the buffer of its
// pipeline slot.
func each(ctx context.Context, r *repo.Repo, rev *repo.Revision, ix *repo.Index, workers int,
	fn func(off int64, length int64, data []byte) error) error {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	bufs := make([][]byte, 2*workers+2)
	return ordered.Run(ctx, workers, len(bufs),
		func(_ context.Context, send func(fetched) error) error {
			for n := range ix.Hashes {
				if err := send(fetched{n: int64(n)}); err != nil {
					return err
				}
			}
			return nil
		},
		func(_ context.Context, slot int, c *fetched) error {
			h := ix.Hashes[c.n]
			if h.IsZero() {
				return nil
			}
			if bufs[slot] == nil {
				bufs[slot] = make([]byte, repo.ChunkSize)
			}
			data, err := r.ReadChunk(bufs[slot], h)
			if err != nil {
				return fmt.Errorf("%w (revision %s, chunk %d at offset %d)", err, rev.ID, c.n, c.n*repo.ChunkSize)
			}
			c.data = data
			return nil
		},
		func(c *fetched) error {
			off := c.n * repo.ChunkSize
			length := min(repo.ChunkSize, ix.Size-off)
			if c.data != nil {
				return fn(off, length, c.data[:length])
			}
			return fn(off, length, nil)
		})
}
