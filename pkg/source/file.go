package source

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/backy/backy/pkg/extent"
	"github.com/backy/backy/pkg/progress"
	"github.com/backy/backy/pkg/repo"
)

// Options tune File.
type Options struct {
	// Size is the image size; required when the input is a pipe.
	Size int64
	// Sample selects a sample stream: 0 means a full stream, a value in
	// (0, 100] the percentage of 4 MiB blocks to send.
	Sample float64
	// Seed makes the choice of sampled blocks repeatable; 0 picks one.
	Seed uint64
	// Stdin is read for the path "-".
	Stdin *os.File
	// Snapshot is recorded in the stream header.
	Snapshot string
	// BaseFrom names a repository: when its newest revision is a trusted
	// backup of this same source and size, the stream is differential and
	// carries only the chunks whose hash differs from that revision's.
	BaseFrom string
	// Repo says how to reach BaseFrom (Ceph settings of a rados: location).
	Repo []repo.Option
	// Log is told why a stream with BaseFrom is full after all, and what
	// was sent when the stream is complete; nil: nothing is logged.
	Log *slog.Logger
	// Progress, when set, follows the image offset up to which the image
	// was read and sent; its total is the image size.
	Progress *progress.Counter
}

// block is one piece of the image read ahead by the reader goroutine.
type block struct {
	off    int64
	buf    []byte
	sum    extent.DataSum // of the data record buf would be, when summed
	summed bool
	err    error
}

// writeBlock writes one block: part of the zero run z when it is all zeros,
// else a data record, with the checksum taken while it was read when there
// is one.
func writeBlock(w *extent.Writer, z *extent.ZeroRun, b block) error {
	if extent.IsZero(b.buf) {
		return z.Add(b.off, b.off+int64(len(b.buf)))
	}
	if err := z.Flush(); err != nil {
		return err
	}
	if b.summed {
		return w.WriteSummed(b.off, b.buf, b.sum)
	}
	return w.WriteData(b.off, b.buf)
}

// File writes an extent stream of the image at path to out. On any error it
// returns without writing the END record, so nothing downstream can mistake
// the output for a complete stream.
func File(ctx context.Context, path string, out io.Writer, opt Options) (extent.Summary, error) {
	started := time.Now()
	img, err := openImage(ctx, path, opt.Stdin, opt.Size)
	if err != nil {
		return extent.Summary{}, err
	}
	if path != "-" {
		defer img.f.Close()
	}
	// A read of a FIFO or socket that waits for a silent writer returns
	// once ctx is done (an interrupt); files without deadlines ignore it.
	stopReads := context.AfterFunc(ctx, func() { _ = img.f.SetReadDeadline(time.Now()) })
	defer stopReads()
	opt.Progress.SetTotal(img.size)
	hdr := extent.Header{Kind: extent.Full, Size: img.size, Source: "file:" + img.name, Snapshot: opt.Snapshot}
	var base *fileBase
	switch {
	case opt.Sample > 0:
		hdr.Kind = extent.Sample
	case opt.BaseFrom != "":
		if base, err = chooseFileBase(opt.BaseFrom, opt.Repo, img.size, opt.Log); err != nil {
			return extent.Summary{}, err
		}
		if base != nil {
			hdr.Kind, hdr.Base = extent.Differential, repo.RevisionBase(base.rev.ID)
		}
	}
	bw := bufio.NewWriterSize(out, 256<<10)
	w, err := extent.NewWriter(bw, hdr)
	if err != nil {
		return extent.Summary{}, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if base != nil {
		err = emitDiff(ctx, w, img, base, opt.Progress)
	} else {
		blocks := make(chan block, 4)
		if opt.Sample > 0 {
			go img.readSample(ctx, blocks, opt)
		} else {
			go img.readAll(ctx, blocks)
		}
		err = emit(w, blocks, img.size, opt.Sample == 0, opt.Progress)
	}
	if err != nil {
		return w.Summary(), err
	}
	// The reader stops quietly when ctx is cancelled (an interrupt), and
	// what it did not read would otherwise be sent as holes: without this
	// check an interrupted backup became a complete stream of zeros.
	if err := ctx.Err(); err != nil {
		return w.Summary(), err
	}
	if err := img.checkUnchangedSize(); err != nil {
		return w.Summary(), err
	}
	if err := w.Close(); err != nil {
		return w.Summary(), err
	}
	if err := bw.Flush(); err != nil {
		return w.Summary(), err
	}
	if opt.Log != nil {
		s, rel := w.Summary(), ""
		if hdr.Base != "" {
			rel = " relative to " + hdr.Base
		}
		secs := max(time.Since(started).Seconds(), 1e-3)
		opt.Log.Info(fmt.Sprintf("%s stream of %s%s: %d records, %d data bytes, %.2fs, %.0f MiB/s",
			hdr.Kind, img.name, rel, s.Records, s.DataBytes, secs, float64(img.size)/secs/(1<<20)))
	}
	return w.Summary(), nil
}

// emit turns blocks into records, merging neighbouring zero ranges (holes
// and all-zero blocks) into one zero record. With fillGaps (full streams)
// the ranges between blocks are holes and become zero records too; in a
// sample stream they are simply not checked.
func emit(w *extent.Writer, blocks <-chan block, size int64, fillGaps bool, done *progress.Counter) error {
	z := extent.ZeroRun{Write: w.WriteZero}
	pos := int64(0)
	for b := range blocks {
		if b.err != nil {
			return b.err
		}
		if fillGaps && b.off > pos {
			if err := z.Add(pos, b.off); err != nil {
				return err
			}
		}
		err := writeBlock(w, &z, b)
		putBuf(b.buf)
		if err != nil {
			return err
		}
		pos = b.off + int64(len(b.buf))
		done.Set(pos)
	}
	if fillGaps && size > pos {
		if err := z.Add(pos, size); err != nil {
			return err
		}
	}
	done.Set(size)
	return z.Flush()
}
