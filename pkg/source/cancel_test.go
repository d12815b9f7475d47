package source

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"

	"github.com/backy/backy/pkg/extent"
)

// TestCancelledIsNotAStream: an interrupted extraction must not end its
// stream. The reader stops quietly on cancellation, and once the unread
// rest of the image was sent as holes with an END record, so backy-store
// committed a revision of zeros and backy-extract exited 0.
func TestCancelledIsNotAStream(t *testing.T) {
	p := sparseFile(t, 64*MiB, map[int64][]byte{0: bytes.Repeat([]byte{1}, MiB), 40 * MiB: {2}})
	for _, opt := range []Options{{}, {Sample: 100}} {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		var out bytes.Buffer
		_, err := File(ctx, p, &out, opt)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("sample %v: error %v, want %v", opt.Sample, err, context.Canceled)
		}
		r, err := extent.NewReader(&out)
		for err == nil {
			_, err = r.Next()
		}
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("sample %v: reading the output: %v, want a truncated stream", opt.Sample, err)
		}
	}
}
