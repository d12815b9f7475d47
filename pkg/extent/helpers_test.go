package extent_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/backy/backy/pkg/extent"
)

// isInvalid reports whether err means the stream itself is malformed or
// truncated (as opposed to an I/O error of the underlying reader).
func isInvalid(err error) bool {
	for _, e := range []error{extent.ErrBadMagic, extent.ErrVersion, extent.ErrBadHeader, extent.ErrChecksum,
		extent.ErrOrder, extent.ErrBeyondImage, extent.ErrTooLong, extent.ErrBadRecord, extent.ErrBadEnd,
		extent.ErrTrailingData, io.ErrUnexpectedEOF} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// parseKind is the inverse of Kind.String.
func parseKind(s string) (extent.Kind, error) {
	for _, k := range []extent.Kind{extent.Full, extent.Differential, extent.Sample} {
		if k.String() == s {
			return k, nil
		}
	}
	return 0, fmt.Errorf("%w: unknown kind %q", extent.ErrBadHeader, s)
}

// decoded is everything a Reader made of a stream.
type decoded struct {
	hdr   extent.Header
	hdrOK bool // NewReader succeeded
	recs  []extent.Record
	sum   extent.Summary
	read  int64
}

// decode reads a whole stream and returns the error that ended it: io.EOF
// for a complete stream. Record payloads are copied, since the Reader reuses
// its buffer.
func decode(r io.Reader) (decoded, error) {
	var d decoded
	sr, err := extent.NewReader(r)
	if err != nil {
		return d, err
	}
	d.hdr, d.hdrOK = sr.Header(), true
	for {
		rec, err := sr.Next()
		if err != nil {
			d.sum, d.read = sr.Summary(), sr.BytesRead()
			return d, err
		}
		c := *rec
		c.Data = bytes.Clone(rec.Data)
		d.recs = append(d.recs, c)
	}
}

// encode writes a stream through the Writer.
func encode(h extent.Header, recs []extent.Record) ([]byte, error) {
	var buf bytes.Buffer
	w, err := extent.NewWriter(&buf, h)
	if err != nil {
		return nil, err
	}
	for _, r := range recs {
		switch r.Type {
		case extent.Data:
			err = w.WriteData(r.Offset, r.Data)
		case extent.Zero:
			err = w.WriteZero(r.Offset, r.Length)
		default:
			err = errors.New("test: record type " + r.Type.String())
		}
		if err != nil {
			return nil, err
		}
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func mustEncode(t testing.TB, h extent.Header, recs []extent.Record) []byte {
	t.Helper()
	b, err := encode(h, recs)
	if err != nil {
		t.Fatalf("encode: %v", err)
	}
	return b
}

// randomBytes returns n bytes from a seeded generator, so failures repeat.
func randomBytes(rng *rand.Rand, n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(rng.Uint32())
	}
	return p
}

// sampleStream is a small valid stream with every kind of record and names,
// used where a test needs just some stream.
func sampleStream(t testing.TB) []byte {
	rng := rand.New(rand.NewPCG(1, 2))
	return mustEncode(t, extent.Header{Kind: extent.Differential, Size: 1<<20 + 7,
		Source: "rbd:pool/vm", Snapshot: "backy-2", Base: "backy-1"}, []extent.Record{
		{Type: extent.Data, Offset: 0, Length: 300, Data: randomBytes(rng, 300)},
		{Type: extent.Zero, Offset: 300, Length: 4096},
		{Type: extent.Data, Offset: 8192, Length: 1, Data: []byte{7}},
		{Type: extent.Zero, Offset: 1 << 19, Length: 1 << 19},
		{Type: extent.Data, Offset: 1 << 20, Length: 7, Data: randomBytes(rng, 7)},
	})
}
