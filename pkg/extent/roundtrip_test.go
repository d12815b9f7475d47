package extent_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"testing"
	"testing/iotest"

	"github.com/backy/backy/pkg/extent"
)

// segment is one range a test writes: data, zero or (neither) a gap.
type segment struct {
	typ       extent.RecordType // 0 for a gap
	off, size int64
}

// randomImage makes an image of the given size split into random data,
// zero and gap segments; data segments are sometimes longer than one record.
func randomImage(rng *rand.Rand, size int64) ([]byte, []segment) {
	img := make([]byte, size)
	var segs []segment
	for off := int64(0); off < size; {
		n := min(size-off, 1+rng.Int64N(64<<10))
		if rng.IntN(8) == 0 {
			n = min(size-off, 1+rng.Int64N(9<<20))
		}
		s := segment{off: off, size: n}
		switch rng.IntN(3) {
		case 0:
			s.typ = extent.Data
			copy(img[off:off+n], randomBytes(rng, int(n)))
		case 1:
			s.typ = extent.Zero
		}
		segs = append(segs, s)
		off += n
	}
	return img, segs
}

func TestRoundTripRandom(t *testing.T) {
	sizes := []int64{0, 1, 4095, 4096, 10007, 3<<20 + 5, 4 << 20, 4<<20 + 1, 9<<20 + 3}
	for i, size := range sizes {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(i), 42))
			img, segs := randomImage(rng, size)
			h := extent.Header{Kind: extent.Full, Size: size, Source: "file:/x", Snapshot: "s"}
			var buf bytes.Buffer
			w, err := extent.NewWriter(&buf, h)
			if err != nil {
				t.Fatal(err)
			}
			var want extent.Summary
			for _, s := range segs {
				switch s.typ {
				case extent.Data:
					err = w.WriteData(s.off, img[s.off:s.off+s.size])
					want.Records += (s.size + extent.MaxDataLength - 1) / extent.MaxDataLength
					want.DataBytes += s.size
				case extent.Zero:
					err = w.WriteZero(s.off, s.size)
					want.Records++
					want.ZeroBytes += s.size
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			if w.Summary() != want {
				t.Errorf("Writer summary %+v, want %+v", w.Summary(), want)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			stream := buf.Bytes()
			d, err := decode(bytes.NewReader(stream))
			if err != io.EOF {
				t.Fatal(err)
			}
			if d.hdr != h || d.sum != want {
				t.Errorf("header %+v summary %+v, want %+v %+v", d.hdr, d.sum, h, want)
			}
			// Rebuild the image as backy-store would: unnamed ranges are zero.
			got := make([]byte, size)
			for _, r := range d.recs {
				if r.Type == extent.Data {
					if r.Length > extent.MaxDataLength {
						t.Fatalf("record of %d bytes", r.Length)
					}
					copy(got[r.Offset:], r.Data)
				}
			}
			if !bytes.Equal(got, img) {
				t.Fatal("image read back differs")
			}
			if again := mustEncode(t, d.hdr, d.recs); !bytes.Equal(again, stream) {
				t.Error("re-encoding what was read gives other bytes")
			}
		})
	}
}

// TestWriteDataSplits checks that data longer than one record becomes
// records of MaxDataLength and a remainder, at the right offsets.
func TestWriteDataSplits(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	p := randomBytes(rng, 2*extent.MaxDataLength+3)
	const off = 5
	stream := mustEncode(t, extent.Header{Kind: extent.Full, Size: int64(len(p)) + off + 1},
		[]extent.Record{{Type: extent.Data, Offset: off, Data: p}})
	d, err := decode(bytes.NewReader(stream))
	if err != io.EOF {
		t.Fatal(err)
	}
	want := []int64{extent.MaxDataLength, extent.MaxDataLength, 3}
	if len(d.recs) != len(want) {
		t.Fatalf("%d records, want %d", len(d.recs), len(want))
	}
	pos := int64(0)
	for i, r := range d.recs {
		if r.Type != extent.Data || r.Offset != off+pos || r.Length != want[i] ||
			!bytes.Equal(r.Data, p[pos:pos+want[i]]) {
			t.Errorf("record %d: %s %d+%d", i, r.Type, r.Offset, r.Length)
		}
		pos += want[i]
	}
}

// TestMaxLengthRecord checks the boundary of the record cap on both sides.
func TestMaxLengthRecord(t *testing.T) {
	p := bytes.Repeat([]byte{0xa5}, extent.MaxDataLength)
	stream := mustEncode(t, extent.Header{Kind: extent.Full, Size: extent.MaxDataLength},
		[]extent.Record{{Type: extent.Data, Offset: 0, Data: p}})
	d, err := decode(bytes.NewReader(stream))
	if err != io.EOF || len(d.recs) != 1 || !bytes.Equal(d.recs[0].Data, p) {
		t.Fatalf("4 MiB record: %d records, %v", len(d.recs), err)
	}
	// One byte more, with the record checksum made right, must be refused
	// from the record header alone.
	long := forgeDataRecord(t, extent.MaxDataLength+1)
	if _, err := decode(bytes.NewReader(long)); !errors.Is(err, extent.ErrTooLong) {
		t.Fatalf("4 MiB + 1 record: got %v, want ErrTooLong", err)
	}
}

// TestRoundTripKinds writes every kind, including the records a sample or
// differential stream typically holds.
func TestRoundTripKinds(t *testing.T) {
	for _, h := range []extent.Header{
		{Kind: extent.Full, Size: 0},
		{Kind: extent.Full, Size: extent.MaxImageSize, Source: "rbd:p/i"},
		{Kind: extent.Differential, Size: 12345, Snapshot: "b", Base: "a"},
		{Kind: extent.Sample, Size: 1 << 40, Source: "file:/dev/sda"},
	} {
		t.Run(h.Kind.String(), func(t *testing.T) {
			var recs []extent.Record
			if h.Size > 0 {
				recs = []extent.Record{
					{Type: extent.Zero, Offset: 0, Length: h.Size / 2},
					{Type: extent.Data, Offset: h.Size - 1, Length: 1, Data: []byte{1}},
				}
			}
			d, err := decode(bytes.NewReader(mustEncode(t, h, recs)))
			if err != io.EOF || d.hdr != h || len(d.recs) != len(recs) {
				t.Fatalf("header %+v, %d records, %v", d.hdr, len(d.recs), err)
			}
		})
	}
}

// TestReaderShortReads reads a stream through readers that return few bytes
// at a time or data together with io.EOF.
func TestReaderShortReads(t *testing.T) {
	stream := sampleStream(t)
	want, err := decode(bytes.NewReader(stream))
	if err != io.EOF {
		t.Fatal(err)
	}
	for name, r := range map[string]io.Reader{
		"one-byte": iotest.OneByteReader(bytes.NewReader(stream)),
		"half":     iotest.HalfReader(bytes.NewReader(stream)),
		"data-err": iotest.DataErrReader(bytes.NewReader(stream)),
	} {
		got, err := decode(r)
		if err != io.EOF {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if got.hdr != want.hdr || got.sum != want.sum || len(got.recs) != len(want.recs) {
			t.Errorf("%s: decoded differently", name)
		}
	}
}

// TestReaderIOError checks that an error of the underlying reader is passed
// on as it is, not mistaken for a malformed or truncated stream.
func TestReaderIOError(t *testing.T) {
	stream := sampleStream(t)
	boom := errors.New("disk on fire")
	for _, n := range []int{0, 10, 100, len(stream) - 1, len(stream)} {
		r := io.MultiReader(bytes.NewReader(stream[:n]), iotest.ErrReader(boom))
		_, err := decode(r)
		if !errors.Is(err, boom) || isInvalid(err) {
			t.Errorf("error after %d bytes: got %v, want %v", n, err, boom)
		}
	}
}

// TestReaderMemoryBounded reads the largest zero record there is and a data
// record header claiming an absurd length, and checks that the bytes
// allocated do not follow either length.
func TestReaderMemoryBounded(t *testing.T) {
	zero := mustEncode(t, extent.Header{Kind: extent.Full, Size: extent.MaxImageSize},
		[]extent.Record{{Type: extent.Zero, Offset: 0, Length: extent.MaxImageSize}})
	long := forgeDataRecord(t, 1<<62)
	for name, c := range map[string]struct {
		stream []byte
		want   error
	}{"zero": {zero, io.EOF}, "long": {long, extent.ErrTooLong}} {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, err := decode(bytes.NewReader(c.stream))
		runtime.ReadMemStats(&after)
		if !errors.Is(err, c.want) {
			t.Fatalf("%s: got %v, want %v", name, err, c.want)
		}
		if n := after.TotalAlloc - before.TotalAlloc; n > 64<<10 {
			t.Errorf("%s: %d bytes allocated", name, n)
		}
	}
}
