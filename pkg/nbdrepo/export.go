package nbdrepo

import (
	"errors"
	"fmt"
	"io"
	"sync/atomic"

	"github.com/backy/backy/pkg/nbdserver"
	"github.com/backy/backy/pkg/repo"
)

// readAhead is how many chunks past the current one a sequential reader has
// loaded in the background, so that every core decompresses while the
// client is sent the current chunk.
const readAhead = 4

// maxSkip bounds the zero chunks between two reads that still count as
// sequential: clients that know the map (nbdcopy) jump over holes.
const maxSkip = 1024

var errNegativeOffset = errors.New("nbdrepo: negative offset")

// errView is a View of bytes that do not lie in one chunk of the export.
var errView = errors.New("nbdrepo: view outside one chunk")

// export is one opened revision. It keeps the index it was opened with, so
// a revision forgotten meanwhile stays readable (purge cannot run while the
// Catalog holds the chunks lock).
type export struct {
	c    *Catalog
	rev  *repo.Revision
	ix   *repo.Index
	desc string
	last atomic.Int64 // chunk of the previous read, for read-ahead
}

var (
	_ nbdserver.Export    = (*export)(nil)
	_ nbdserver.Describer = (*export)(nil)
	_ nbdserver.Canonical = (*export)(nil)
)

func newExport(c *Catalog, rev *repo.Revision, ix *repo.Index) *export {
	e := &export{c: c, rev: rev, ix: ix, desc: describe(rev)}
	e.last.Store(-1)
	return e
}

func (e *export) Size() int64         { return e.ix.Size }
func (e *export) Description() string { return e.desc }

// CanonicalName is the revision id: the one name that always opens this
// revision ("latest", N and tags move on when a revision is stored).
func (e *export) CanonicalName() string { return e.rev.ID }
func (e *export) Close() error          { return nil }

// ReadAt copies verified bytes of the image into p. Zero chunks are
// zeros without a look at the store; every other chunk comes from the cache
// or is loaded and verified by repo.ReadChunk. On error p holds no byte of
// the failing chunk, and the error names the chunk, revision and offset.
func (e *export) ReadAt(p []byte, off int64) (int, error) { return e.readAt(p, off, true) }

// tableReader reads an export for the server itself (its partition table,
// at every list and every open of SPEC/pN): it starts no read-ahead and
// leaves the client's read position alone. Through ReadAt, a table read of
// chunk 0 counted as the start of a sequential read and loaded 4 chunks
// ahead, for each revision a list showed.
type tableReader struct{ e *export }

func (t tableReader) ReadAt(p []byte, off int64) (int, error) { return t.e.readAt(p, off, false) }

// readAt is ReadAt; ahead says whether the read is the client's, which
// moves the read position and may start read-ahead.
func (e *export) readAt(p []byte, off int64, ahead bool) (int, error) {
	p, eof := window(p, off, e.ix.Size)
	if eof != nil && len(p) == 0 {
		return 0, eof
	}
	for done := 0; done < len(p); {
		pos := off + int64(done)
		k := pos / repo.ChunkSize
		in := int(pos % repo.ChunkSize)
		n := min(len(p)-done, repo.ChunkSize-in)
		if e.ix.Hashes[k].IsZero() {
			clear(p[done : done+n])
		} else {
			if ahead && e.follows(e.last.Load(), k, pos) {
				e.prefetch(k) // before k is loaded, so both run at once
			}
			ent, err := e.load(k)
			if err != nil {
				return done, err
			}
			copy(p[done:done+n], ent.data[in:in+n])
			e.c.cache.release(ent)
		}
		if ahead {
			e.last.Store(k)
		}
		done += n
	}
	return len(p), eof
}

// load returns data chunk k, pinned (release it), from the cache or loaded
// and verified; its error names the chunk, revision and offset.
func (e *export) load(k int64) (*entry, error) {
	ent, err := e.c.cache.get(e.ix.Hashes[k])
	if err != nil {
		return nil, fmt.Errorf("%w (revision %s, chunk %d at offset %d)", err, e.rev.ID, k, k*repo.ChunkSize)
	}
	return ent, nil
}

// zeroChunk is what View shows of a zero chunk.
var zeroChunk = make([]byte, repo.ChunkSize)

// View calls fn with the verified bytes [off, off+n) of the image, which
// must lie in one chunk, without copying them; fn must not keep them. It
// loads the chunk if need be but starts no read-ahead: it is for a helper
// of the reader (backy-nbd mount hands whole chunks to the page cache),
// whose reads would look like the reader's own. Errors are ReadAt's.
func (e *export) View(off int64, n int, fn func(p []byte)) error {
	k, in := off/repo.ChunkSize, int(off%repo.ChunkSize)
	if off < 0 || n < 0 || in+n > repo.ChunkSize || off+int64(n) > e.ix.Size {
		return fmt.Errorf("%w: %d bytes at %d", errView, n, off)
	}
	if e.ix.Hashes[k].IsZero() {
		fn(zeroChunk[in : in+n])
		return nil
	}
	ent, err := e.load(k)
	if err != nil {
		return err
	}
	defer e.c.cache.release(ent)
	fn(ent.data[in : in+n])
	return nil
}

// window cuts p to what lies inside an export of size bytes from off. The
// error is errNegativeOffset, or io.EOF when the read reaches the end (p
// then holds the bytes before it, none if off is past the end).
func window(p []byte, off, size int64) ([]byte, error) {
	switch {
	case off < 0:
		return nil, errNegativeOffset
	case off >= size:
		return nil, io.EOF
	case int64(len(p)) > size-off:
		return p[:size-off], io.EOF
	}
	return p, nil
}

// follows reports whether a read at pos in chunk k continues a sequential
// read that was last in chunk prev: the same chunk, the next, or, from its
// start, the next after zero chunks (a client that knows the map jumps over
// them to where the data starts). Random reads that happen to land after
// zero chunks mostly do not start a chunk, and load nothing ahead.
func (e *export) follows(prev, k, pos int64) bool {
	if k == prev || k == prev+1 {
		return true
	}
	if k < prev || k-prev > maxSkip || pos != k*repo.ChunkSize {
		return false
	}
	for i := prev + 1; i < k; i++ {
		if !e.ix.Hashes[i].IsZero() {
			return false
		}
	}
	return true
}

// prefetch starts loading the chunks after k that hold data; those cached,
// loading or beyond the read-ahead limit are skipped, and asked for again
// at the next read.
func (e *export) prefetch(k int64) {
	for i := k + 1; i <= k+readAhead && i < int64(len(e.ix.Hashes)); i++ {
		if h := e.ix.Hashes[i]; !h.IsZero() {
			e.c.cache.prefetch(h)
		}
	}
}

var _ nbdserver.Mapper = (*export)(nil)

// Extent reports runs of zero chunks and of data chunks from the index, so
// clients skip the zeros without reading them.
func (e *export) Extent(off, max int64) (bool, int64) {
	k := off / repo.ChunkSize
	zero := e.ix.Hashes[k].IsZero()
	end := (k + 1) * repo.ChunkSize
	for end-off < max && end < e.ix.Size && e.ix.Hashes[end/repo.ChunkSize].IsZero() == zero {
		end += repo.ChunkSize
	}
	return zero, min(end-off, max, e.ix.Size-off)
}
