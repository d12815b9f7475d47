package restore

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestTargetWriterPaths writes the same chunk through every path a piece can
// take: O_DIRECT, no O_DIRECT descriptor at all (a file system that refuses
// it), and a buffer that is not page aligned.
func TestTargetWriterPaths(t *testing.T) {
	data := make([]byte, 3*holePage+100)
	for i := range data {
		data[i] = byte(i%251 + 1)
	}
	clear(data[holePage : 2*holePage])
	backing := make([]byte, len(data)+1)
	unaligned := backing[1:]
	copy(unaligned, data)
	cases := map[string]struct {
		direct bool
		buf    []byte
	}{
		"direct":    {true, data},
		"buffered":  {false, data},
		"unaligned": {true, unaligned},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "out")
			f, err := os.Create(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			const off = 2 * holePage
			if err := f.Truncate(off + int64(len(data)) + 7); err != nil {
				t.Fatal(err)
			}
			w := newTargetWriter(f)
			if !c.direct {
				w.Close()
				w.direct = nil
			}
			if err := w.writeChunk(c.buf, off); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			want := make([]byte, off+len(data)+7)
			copy(want[off:], data)
			if !bytes.Equal(got, want) {
				t.Fatal("file content differs")
			}
		})
	}
}
