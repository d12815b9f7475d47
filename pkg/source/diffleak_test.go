package source

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"testing"
)

// failingWriter accepts n bytes, then fails.
type failingWriter struct{ n int }

var errOutput = errors.New("output closed")

func (w *failingWriter) Write(p []byte) (int, error) {
	if len(p) > w.n {
		return 0, errOutput
	}
	w.n -= len(p)
	return len(p), nil
}

// TestBaseFromStopsItsGoroutines: when the output fails, File returns only
// once the chunk planner and the reading workers (the goroutines of the
// ordered pipeline) have stopped, so nothing reads the image after File
// closed it.
func TestBaseFromStopsItsGoroutines(t *testing.T) {
	size := int64(24 * chunk)
	f := newDiffFixture(t, size)
	fill := func(seed byte) {
		b := make([]byte, size)
		for i := range b {
			b[i] = byte(i>>12) ^ seed | 1
		}
		f.writeBytes(0, b)
	}
	fill(2)
	f.backup(f.img)
	fill(4) // every chunk changed
	for range 5 {
		_, err := File(context.Background(), f.img, &failingWriter{n: 1 << 20}, Options{BaseFrom: f.dir})
		if !errors.Is(err, errOutput) {
			t.Fatalf("error %v, want %v", err, errOutput)
		}
		// Planning, reading and hashing must be over when File returns.
		stacks := allStacks()
		for _, fn := range []string{"source.(*image).planChunks", "source.(*image).readGroup", "pkg/ordered.Run["} {
			if strings.Contains(stacks, fn) {
				t.Fatalf("%s still runs after File returned:\n%s", fn, stacks)
			}
		}
	}
}

func allStacks() string {
	buf := make([]byte, 1<<20)
	return string(buf[:runtime.Stack(buf, true)])
}
