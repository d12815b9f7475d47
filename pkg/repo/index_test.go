package repo

import (
	"bytes"
	"errors"
	"testing"
)

func sampleIndex() *Index {
	ix := NewIndex(3*ChunkSize + 17)
	for i := range ix.Hashes {
		if i != 1 {
			ix.Hashes[i] = HashChunk(bytes.Repeat([]byte{byte(i + 1)}, ChunkSize))
		}
	}
	return ix
}

func TestIndexRoundTrip(t *testing.T) {
	for _, ix := range []*Index{NewIndex(0), NewIndex(1), sampleIndex()} {
		b, err := ix.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if len(b) != indexHeaderLen+32*len(ix.Hashes)+4 {
			t.Fatalf("index of %d chunks is %d bytes", len(ix.Hashes), len(b))
		}
		var got Index
		if err := got.UnmarshalBinary(b); err != nil {
			t.Fatal(err)
		}
		if got.Size != ix.Size || len(got.Hashes) != len(ix.Hashes) {
			t.Fatalf("got size %d, %d hashes", got.Size, len(got.Hashes))
		}
		for i := range ix.Hashes {
			if got.Hashes[i] != ix.Hashes[i] {
				t.Fatalf("hash %d differs", i)
			}
		}
	}
}

// Every single flipped bit and every truncation of an index is detected.
func TestIndexDamageIsDetected(t *testing.T) {
	b, _ := sampleIndex().MarshalBinary()
	for i := range b {
		for bit := 0; bit < 8; bit++ {
			d := append([]byte(nil), b...)
			d[i] ^= 1 << bit
			var ix Index
			err := ix.UnmarshalBinary(d)
			if err == nil {
				t.Fatalf("flip of bit %d in byte %d not detected", bit, i)
			}
			if !errors.Is(err, ErrCorruptIndex) && !errors.Is(err, ErrFormat) {
				t.Fatalf("byte %d: error %v", i, err)
			}
		}
	}
	for n := 0; n < len(b); n++ {
		var ix Index
		if err := ix.UnmarshalBinary(b[:n]); !errors.Is(err, ErrCorruptIndex) {
			t.Fatalf("truncated to %d bytes: %v", n, err)
		}
	}
}

func TestIndexResize(t *testing.T) {
	ix := sampleIndex()
	h0 := ix.Hashes[0]
	ix.Resize(ChunkSize)
	if len(ix.Hashes) != 1 || ix.Hashes[0] != h0 {
		t.Fatal("shrink lost the first chunk")
	}
	ix.Resize(5 * ChunkSize)
	if len(ix.Hashes) != 5 || !ix.Hashes[4].IsZero() {
		t.Fatal("grow did not add zero chunks")
	}
}

func FuzzIndex(f *testing.F) {
	for _, ix := range []*Index{NewIndex(0), sampleIndex()} {
		b, _ := ix.MarshalBinary()
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var ix Index
		if err := ix.UnmarshalBinary(b); err != nil {
			return
		}
		if int64(len(ix.Hashes)) != ChunkCount(ix.Size) {
			t.Fatalf("accepted %d hashes for size %d", len(ix.Hashes), ix.Size)
		}
		again, _ := ix.MarshalBinary()
		if !bytes.Equal(again, b) {
			t.Fatal("accepted index does not re-encode to the same bytes")
		}
	})
}
