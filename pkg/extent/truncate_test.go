package extent_test

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/backy/backy/pkg/extent"
)

// drain reads a stream to its end without keeping anything and returns the
// error that ended it (io.EOF for a complete stream).
func drain(stream []byte) error {
	r, err := extent.NewReader(bytes.NewReader(stream))
	if err != nil {
		return err
	}
	for {
		if _, err := r.Next(); err != nil {
			return err
		}
	}
}

// validStreams returns the valid vectors plus a stream made by the Writer.
func validStreams(t *testing.T) map[string][]byte {
	streams := map[string][]byte{"writer-sample": sampleStream(t)}
	for _, v := range loadManifest(t).Vectors {
		if v.Valid {
			streams[v.Name] = readVector(t, v.File)
		}
	}
	return streams
}

// cutPoints returns the positions a stream of more than 4 KiB is cut at
// (smaller ones are cut at every byte): every byte
// of the header, of each record header and of the END record; inside
// payloads, their first and last bytes and a stride between. (Each Reader
// allocates a payload buffer of at least 1 MiB, so cutting every payload
// byte of the larger vectors takes tens of seconds and finds nothing new:
// inside a payload the Reader is in one io.ReadFull.)
func cutPoints(t *testing.T, stream []byte) []int {
	inPayload := make([]bool, len(stream))
	r, err := extent.NewReader(bytes.NewReader(stream))
	if err != nil {
		t.Fatal(err)
	}
	for {
		rec, err := r.Next()
		if err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if rec.Type == extent.Data {
			end := int(r.BytesRead())
			for i := end - int(rec.Length) + 2; i < end-2; i++ {
				inPayload[i] = true
			}
		}
	}
	var cuts []int
	for n := range len(stream) {
		if !inPayload[n] || n%61 == 0 {
			cuts = append(cuts, n)
		}
	}
	return cuts
}

// TestEveryPrefixTruncated cuts valid streams at every byte position (the
// larger ones at every position cutPoints names): a prefix is never a valid stream (the END record and the end
// of input decide), and it is reported as truncation, never as io.EOF.
func TestEveryPrefixTruncated(t *testing.T) {
	for name, stream := range validStreams(t) {
		if err := drain(stream); err != io.EOF {
			t.Fatalf("%s: whole stream: %v", name, err)
		}
		cuts := cutPoints(t, stream)
		if len(stream) <= 4096 {
			cuts = cuts[:0]
			for n := range len(stream) {
				cuts = append(cuts, n)
			}
		}
		for _, n := range cuts {
			err := drain(stream[:n])
			if !errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
				t.Fatalf("%s cut at %d of %d: got %v, want truncated", name, n, len(stream), err)
			}
		}
	}
}

// TestBytesAfterEnd appends bytes after a valid END record: the records are
// still returned, then ErrTrailingData, never io.EOF.
func TestBytesAfterEnd(t *testing.T) {
	for name, stream := range validStreams(t) {
		want, err := decode(bytes.NewReader(stream))
		if err != io.EOF {
			t.Fatalf("%s: %v", name, err)
		}
		for _, tail := range [][]byte{
			{0}, []byte("\n"), {'E'}, bytes.Repeat([]byte{0}, 4096),
			stream[len(stream)-40:], // the END record once more
			stream,                  // the whole stream once more
		} {
			s := append(bytes.Clone(stream), tail...)
			got, err := decode(bytes.NewReader(s))
			if !errors.Is(err, extent.ErrTrailingData) || errors.Is(err, io.EOF) {
				t.Fatalf("%s + %d bytes: got %v, want ErrTrailingData", name, len(tail), err)
			}
			if len(got.recs) != len(want.recs) {
				t.Errorf("%s + %d bytes: %d records before the error, want %d", name, len(tail),
					len(got.recs), len(want.recs))
			}
		}
	}
}
