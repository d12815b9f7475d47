package rbddiff

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// FuzzReader feeds arbitrary bytes to the Reader. It must never panic, must
// end every stream with io.EOF or an error, must hand out exactly the
// announced data of each write record, and whatever it accepts must obey the
// rules (ordered, inside the image) and survive a round trip through the
// Writer.
func FuzzReader(f *testing.F) {
	for _, kind := range []string{"valid", "invalid"} {
		paths, _ := filepath.Glob(filepath.Join("testdata", kind, "*.bin"))
		for _, p := range paths {
			b, err := os.ReadFile(p)
			if err != nil {
				f.Fatal(err)
			}
			if len(b) < 1<<20 {
				f.Add(b)
			}
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := decode(bytes.NewReader(b), 1, 4096)
		if err != nil {
			if errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("plain io.EOF as an error: %v", err)
			}
			return
		}
		var end uint64
		for i, r := range d.recs {
			if r.Length == 0 || r.Offset < end || r.Offset+r.Length > d.hdr.Size || r.Offset+r.Length < r.Offset {
				t.Fatalf("accepted bad record %+v after end %d, size %d", r, end, d.hdr.Size)
			}
			if r.Type == TypeWrite && uint64(len(d.data[i])) != r.Length {
				t.Fatalf("record %+v gave %d bytes", r, len(d.data[i]))
			}
			end = r.Offset + r.Length
		}
		enc, err := d.encode()
		if err != nil {
			t.Fatalf("Writer refused what the Reader accepted: %v", err)
		}
		d2, err := decode(bytes.NewReader(enc))
		if err != nil || d2.text() != d.text() {
			t.Fatalf("round trip: %v\n%s\n%s", err, d.text(), d2.text())
		}
	})
}
