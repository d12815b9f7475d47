package rbd

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"math"

	"github.com/backy/backy/pkg/extent"
	"github.com/backy/backy/pkg/rbddiff"
	"github.com/backy/backy/pkg/repo"
)

// ConvertOptions tune Convert.
type ConvertOptions struct {
	// Source is recorded in the stream header; default "rbd-diff".
	Source string
}

// Convert turns an `rbd export-diff` stream (docs/rbd-diff.md) into an
// extent stream: its from-snapshot becomes the base (a differential stream)
// or, without one, the stream is full; its to-snapshot becomes the
// snapshot. The records take the same canonical form as those of
// `backy-extract rbd`. Only a diff that ended with its end record, and
// nothing after it, gets an END record.
func Convert(ctx context.Context, in io.Reader, out io.Writer, opt ConvertOptions) (extent.Summary, error) {
	r := rbddiff.NewReader(in)
	h, err := r.Header()
	if err != nil {
		return extent.Summary{}, err
	}
	hdr := extent.Header{Kind: extent.Full, Source: cmp.Or(opt.Source, "rbd-diff"), Snapshot: h.ToSnap}
	if h.FromSnap != "" {
		hdr.Kind, hdr.Base = extent.Differential, h.FromSnap
	}
	e := newEmitter(out, hdr, 0, 0)
	if err := copyDiff(ctx, r, h, e); err != nil {
		return extent.Summary{}, err
	}
	return e.finish()
}

// copyDiff hands the records of an rbd diff to sink: zero records as they
// are, write records in pieces that end at chunk boundaries, read into one
// reused buffer of at most 4 MiB (a write record may be up to 64 MiB long).
func copyDiff(ctx context.Context, r *rbddiff.Reader, h *rbddiff.Header, sink Sink) error {
	if h.Size > math.MaxInt64 {
		return fmt.Errorf("%w: image size %d", rbddiff.ErrOutOfRange, h.Size)
	}
	if err := sink.Begin(int64(h.Size)); err != nil {
		return err
	}
	var buf []byte
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		rec, err := r.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		off, end := int64(rec.Offset), int64(rec.End())
		if rec.Type == rbddiff.TypeZero {
			if err := sink.Zero(off, end-off); err != nil {
				return err
			}
			continue
		}
		for off < end {
			n := min(end, (off/repo.ChunkSize+1)*repo.ChunkSize) - off
			if !sink.Wanted(off, off+n) {
				if _, err := io.CopyN(io.Discard, r, n); err != nil {
					return err
				}
				off += n
				continue
			}
			if int64(len(buf)) < n {
				buf = make([]byte, n)
			}
			if _, err := io.ReadFull(r, buf[:n]); err != nil {
				return err
			}
			if err := sink.Data(off, buf[:n]); err != nil {
				return err
			}
			off += n
		}
	}
}
