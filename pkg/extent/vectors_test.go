package extent_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/backy/backy/pkg/extent"
)

// The manifest format is defined by internal/genvectors (manifest.go).
type vectorManifest struct {
	Vectors []struct {
		Name    string
		File    string
		Valid   bool
		Error   string
		FailsIn string `json:"fails_in"`
		Header  *struct {
			Kind                   string
			Size                   int64
			Source, Snapshot, Base string
			Consistency, Reason    string
			FrozenNS               int64 `json:"frozen_ns"`
		}
		Records []struct {
			Type   string
			Offset int64
			Length int64
			SHA256 string
		}
		Summary *struct{ Records, Data, Zero int64 }
	}
}

var sentinels = map[string]error{
	"ErrBadMagic":     extent.ErrBadMagic,
	"ErrVersion":      extent.ErrVersion,
	"ErrBadHeader":    extent.ErrBadHeader,
	"ErrChecksum":     extent.ErrChecksum,
	"ErrOrder":        extent.ErrOrder,
	"ErrBeyondImage":  extent.ErrBeyondImage,
	"ErrTooLong":      extent.ErrTooLong,
	"ErrBadRecord":    extent.ErrBadRecord,
	"ErrBadEnd":       extent.ErrBadEnd,
	"ErrTrailingData": extent.ErrTrailingData,
	"ErrTruncated":    extent.ErrTruncated,
}

func loadManifest(t testing.TB) vectorManifest {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "vectors.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m vectorManifest
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if len(m.Vectors) == 0 {
		t.Fatal("no vectors in testdata/vectors.json")
	}
	return m
}

func readVector(t testing.TB, file string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", file))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestVectors(t *testing.T) {
	for _, v := range loadManifest(t).Vectors {
		t.Run(v.Name, func(t *testing.T) {
			stream := readVector(t, v.File)
			d, err := decode(bytes.NewReader(stream))
			if v.Valid {
				if err != io.EOF {
					t.Fatalf("valid stream: got %v, want io.EOF", err)
				}
				if d.read != int64(len(stream)) {
					t.Errorf("BytesRead = %d, stream has %d", d.read, len(stream))
				}
			} else {
				want, ok := sentinels[v.Error]
				if !ok {
					t.Fatalf("manifest names unknown sentinel %q", v.Error)
				}
				if !errors.Is(err, want) || errors.Is(err, io.EOF) || !isInvalid(err) {
					t.Fatalf("got %v, want %s (and never io.EOF)", err, v.Error)
				}
				if d.hdrOK != (v.FailsIn == "records") {
					t.Fatalf("NewReader succeeded = %v, but the vector fails in %s (%v)", d.hdrOK, v.FailsIn, err)
				}
				if v.Error == "ErrTruncated" && !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Errorf("truncation %v does not wrap io.ErrUnexpectedEOF", err)
				}
			}
			if v.Header != nil {
				want := extent.Header{Size: v.Header.Size, Source: v.Header.Source,
					Snapshot: v.Header.Snapshot, Base: v.Header.Base, Consistency: v.Header.Consistency,
					Reason: v.Header.Reason, Frozen: time.Duration(v.Header.FrozenNS)}
				var err error
				if want.Kind, err = parseKind(v.Header.Kind); err != nil {
					t.Fatal(err)
				}
				if d.hdr != want {
					t.Errorf("header %+v, want %+v", d.hdr, want)
				}
			}
			if len(d.recs) != len(v.Records) {
				t.Fatalf("%d records, want %d", len(d.recs), len(v.Records))
			}
			for i, want := range v.Records {
				got := d.recs[i]
				if got.Type.String() != want.Type || got.Offset != want.Offset || got.Length != want.Length {
					t.Errorf("record %d: %s %d+%d, want %s %d+%d", i,
						got.Type, got.Offset, got.Length, want.Type, want.Offset, want.Length)
				}
				if got.Type == extent.Data {
					h := sha256.Sum256(got.Data)
					if hex.EncodeToString(h[:]) != want.SHA256 || int64(len(got.Data)) != got.Length {
						t.Errorf("record %d: payload differs", i)
					}
				} else if got.Data != nil {
					t.Errorf("record %d: zero record with %d bytes of data", i, len(got.Data))
				}
			}
			if v.Summary != nil {
				want := extent.Summary{Records: v.Summary.Records, DataBytes: v.Summary.Data, ZeroBytes: v.Summary.Zero}
				if d.sum != want {
					t.Errorf("summary %+v, want %+v", d.sum, want)
				}
			}
		})
	}
}

// TestVectorsWriter proves the Writer produces every valid vector byte for
// byte: the generator encodes by hand, independently of the Writer.
func TestVectorsWriter(t *testing.T) {
	for _, v := range loadManifest(t).Vectors {
		if !v.Valid {
			continue
		}
		t.Run(v.Name, func(t *testing.T) {
			stream := readVector(t, v.File)
			d, err := decode(bytes.NewReader(stream))
			if err != io.EOF {
				t.Fatal(err)
			}
			if got := mustEncode(t, d.hdr, d.recs); !bytes.Equal(got, stream) {
				t.Errorf("Writer output differs from the vector")
			}
		})
	}
}

// TestVectorsSticky checks that after any error the Reader keeps returning
// it and reads nothing more.
func TestVectorsSticky(t *testing.T) {
	for _, v := range loadManifest(t).Vectors {
		if v.Valid || v.FailsIn != "records" {
			continue
		}
		t.Run(v.Name, func(t *testing.T) {
			r, err := extent.NewReader(bytes.NewReader(readVector(t, v.File)))
			if err != nil {
				t.Fatal(err)
			}
			for err == nil {
				_, err = r.Next()
			}
			n := r.BytesRead()
			for range 3 {
				if rec, err2 := r.Next(); rec != nil || err2 != err {
					t.Fatalf("after %v, Next returned %v, %v", err, rec, err2)
				}
			}
			if r.BytesRead() != n {
				t.Errorf("Reader went on reading after an error")
			}
		})
	}
}
