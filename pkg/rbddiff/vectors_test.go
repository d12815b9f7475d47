package rbddiff

import (
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// sentinels maps the names used in testdata/invalid/*.err to errors.
var sentinels = map[string]error{
	"io.ErrUnexpectedEOF": io.ErrUnexpectedEOF,
	"ErrBadMagic":         ErrBadMagic,
	"ErrBadTag":           ErrBadTag,
	"ErrBadRecord":        ErrBadRecord,
	"ErrTooLong":          ErrTooLong,
	"ErrOutOfRange":       ErrOutOfRange,
	"ErrOrder":            ErrOrder,
	"ErrTrailing":         ErrTrailing,
}

// decoded is a stream read completely.
type decoded struct {
	hdr  *Header
	recs []Record
	data [][]byte // data of each write record (nil for zero records)
}

// decode reads a whole stream, reading write data in pieces whose sizes
// cycle through pieces, and returns what it read up to the first error.
func decode(r io.Reader, pieces ...int) (*decoded, error) {
	if len(pieces) == 0 {
		pieces = []int{bufSize}
	}
	d := &decoded{}
	rd := NewReader(r)
	h, err := rd.Header()
	if err != nil {
		return d, err
	}
	d.hdr = h
	for i := 0; ; i++ {
		rec, err := rd.Next()
		if err == io.EOF {
			return d, nil
		}
		if err != nil {
			return d, err
		}
		d.recs = append(d.recs, *rec)
		var data []byte
		if rec.Type == TypeWrite {
			data = []byte{}
			buf := make([]byte, pieces[i%len(pieces)])
			for {
				n, err := rd.Read(buf)
				data = append(data, buf[:n]...)
				if err == io.EOF {
					break
				}
				if err != nil {
					d.data = append(d.data, data)
					return d, err
				}
			}
			if uint64(len(data)) != rec.Length {
				return d, fmt.Errorf("read %d bytes of a %d-byte record", len(data), rec.Length)
			}
		}
		d.data = append(d.data, data)
	}
}

// text renders a decoded stream in the format of testdata/valid/*.txt.
func (d *decoded) text() string {
	var s strings.Builder
	h := d.hdr
	fmt.Fprintf(&s, "version %d\n", h.Version)
	if h.FromSnap != "" {
		fmt.Fprintf(&s, "from %q\n", h.FromSnap)
	}
	if h.ToSnap != "" {
		fmt.Fprintf(&s, "to %q\n", h.ToSnap)
	}
	if h.Protected != nil {
		fmt.Fprintf(&s, "protected %v\n", *h.Protected)
	}
	fmt.Fprintf(&s, "size %d\n", h.Size)
	for i, r := range d.recs {
		if r.Type == TypeWrite {
			fmt.Fprintf(&s, "w %d %d crc32c=%08x\n", r.Offset, r.Length, crc32.Checksum(d.data[i], castagnoli))
		} else {
			fmt.Fprintf(&s, "z %d %d\n", r.Offset, r.Length)
		}
	}
	s.WriteString("end\n")
	return s.String()
}

// encode writes a decoded stream with a Writer.
func (d *decoded) encode() ([]byte, error) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	if err := w.WriteHeader(d.hdr); err != nil {
		return nil, err
	}
	for i, r := range d.recs {
		if err := w.WriteRecord(&r); err != nil {
			return nil, err
		}
		// Write the data in two calls, to exercise partial writes.
		half := len(d.data[i]) / 2
		if _, err := w.Write(d.data[i][:half]); err != nil {
			return nil, err
		}
		if _, err := w.Write(d.data[i][half:]); err != nil {
			return nil, err
		}
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

type vector struct {
	name string
	data []byte
	want string // valid: expected text; invalid: sentinel name
}

func loadVectors(t testing.TB, kind, ext string) []vector {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join("testdata", kind, "*.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) < 10 {
		t.Fatalf("only %d vectors in testdata/%s; run go generate", len(paths), kind)
	}
	var vs []vector
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		want, err := os.ReadFile(strings.TrimSuffix(p, ".bin") + ext)
		if err != nil {
			t.Fatal(err)
		}
		vs = append(vs, vector{filepath.Base(strings.TrimSuffix(p, ".bin")), data, string(want)})
	}
	return vs
}

func TestValidVectors(t *testing.T) {
	for _, v := range loadVectors(t, "valid", ".txt") {
		t.Run(v.name, func(t *testing.T) {
			for _, pieces := range [][]int{{bufSize}, {1}, {7, 4096, 1 << 20}} {
				d, err := decode(bytes.NewReader(v.data), pieces...)
				if err != nil {
					t.Fatalf("pieces %v: %v", pieces, err)
				}
				if got := d.text(); got != v.want {
					t.Fatalf("pieces %v: decoded\n%s\nwant\n%s", pieces, got, v.want)
				}
			}
			// Through a reader that returns one byte per call.
			d, err := decode(&oneByteReader{bytes.NewReader(v.data)})
			if err != nil {
				t.Fatalf("one byte at a time: %v", err)
			}
			// The Writer must reproduce the stream: byte for byte when the
			// metadata were in the order the Writer uses.
			enc, err := d.encode()
			if err != nil {
				t.Fatalf("re-encoding: %v", err)
			}
			if !strings.HasPrefix(v.name, "unordered-meta") && !bytes.Equal(enc, v.data) {
				t.Fatalf("Writer output differs from the vector (%d vs %d bytes)", len(enc), len(v.data))
			}
			d2, err := decode(bytes.NewReader(enc))
			if err != nil || d2.text() != v.want {
				t.Fatalf("decoding the Writer's output: %v\n%s", err, d2.text())
			}
		})
	}
}

func TestInvalidVectors(t *testing.T) {
	for _, v := range loadVectors(t, "invalid", ".err") {
		t.Run(v.name, func(t *testing.T) {
			want, ok := sentinels[strings.TrimSpace(v.want)]
			if !ok {
				t.Fatalf("unknown error %q in %s.err", v.want, v.name)
			}
			_, err := decode(bytes.NewReader(v.data))
			if !errors.Is(err, want) {
				t.Fatalf("got error %v, want %v", err, want)
			}
			if !strings.HasPrefix(err.Error(), "rbddiff: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
			// Errors are sticky.
			rd := NewReader(bytes.NewReader(v.data))
			var first error
			for first == nil {
				if _, first = rd.Next(); first == nil {
					_, first = io.Copy(io.Discard, rd)
				}
			}
			if _, again := rd.Next(); again != first {
				t.Fatalf("Next after %v returned %v", first, again)
			}
		})
	}
}

// TestTruncated cuts every valid vector at every byte: each prefix must fail
// with io.ErrUnexpectedEOF, never succeed or report anything else.
func TestTruncated(t *testing.T) {
	for _, v := range loadVectors(t, "valid", ".txt") {
		t.Run(v.name, func(t *testing.T) {
			for n := 0; n < len(v.data); n++ {
				if n > 2048 && n < len(v.data)-2048 && n%997 != 0 {
					continue // long data: sample the middle
				}
				_, err := decode(bytes.NewReader(v.data[:n]), 1000)
				if !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Fatalf("cut at %d of %d: got %v, want io.ErrUnexpectedEOF", n, len(v.data), err)
				}
			}
		})
	}
}

// TestTrailing appends bytes to every valid vector.
func TestTrailing(t *testing.T) {
	for _, v := range loadVectors(t, "valid", ".txt") {
		for _, extra := range []string{"\x00", "e", MagicV1} {
			_, err := decode(bytes.NewReader(append(v.data[:len(v.data):len(v.data)], extra...)))
			if !errors.Is(err, ErrTrailing) {
				t.Errorf("%s + %q: got %v, want ErrTrailing", v.name, extra, err)
			}
		}
	}
}

type oneByteReader struct{ r io.Reader }

func (o *oneByteReader) Read(p []byte) (int, error) {
	if len(p) > 1 {
		p = p[:1]
	}
	return o.r.Read(p)
}
