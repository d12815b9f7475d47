package extent_test

import (
	"bytes"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/backy/backy/pkg/extent"
)

// benchRecords is how many 4 MiB data records the benchmarks move per
// iteration: enough to amortise the header, small enough to stay in memory.
const benchRecords = 8

func benchPayload() []byte {
	return randomBytes(rand.New(rand.NewPCG(5, 6)), extent.MaxDataLength)
}

// BenchmarkReadData4MiB decodes and verifies full-length data records from
// memory: the Reader's cost on top of the pipe backy-store reads from.
func BenchmarkReadData4MiB(b *testing.B) {
	p := benchPayload()
	h := extent.Header{Kind: extent.Full, Size: benchRecords * extent.MaxDataLength}
	recs := make([]extent.Record, benchRecords)
	for i := range recs {
		recs[i] = extent.Record{Type: extent.Data, Offset: int64(i) * extent.MaxDataLength, Data: p}
	}
	stream := mustEncode(b, h, recs)
	var br bytes.Reader
	b.SetBytes(benchRecords * extent.MaxDataLength)
	b.ReportAllocs()
	for b.Loop() {
		br.Reset(stream)
		r, err := extent.NewReader(&br)
		if err != nil {
			b.Fatal(err)
		}
		for {
			if _, err = r.Next(); err != nil {
				break
			}
		}
		if err != io.EOF {
			b.Fatal(err)
		}
	}
}

// BenchmarkWriteData4MiB encodes full-length data records to io.Discard.
func BenchmarkWriteData4MiB(b *testing.B) {
	p := benchPayload()
	h := extent.Header{Kind: extent.Full, Size: benchRecords * extent.MaxDataLength}
	b.SetBytes(benchRecords * extent.MaxDataLength)
	b.ReportAllocs()
	for b.Loop() {
		w, err := extent.NewWriter(io.Discard, h)
		if err != nil {
			b.Fatal(err)
		}
		for i := range int64(benchRecords) {
			if err := w.WriteData(i*extent.MaxDataLength, p); err != nil {
				b.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			b.Fatal(err)
		}
	}
}
