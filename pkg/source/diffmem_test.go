package source

import (
	"bytes"
	"context"
	"runtime"
	"testing"
)

// TestBaseFromFragmentedChunkMemory: a chunk made of many small data
// regions (a VM image after the guest trimmed its free space) is read into
// one chunk buffer, not into a 4 MiB buffer per region: once every group in
// flight held hundreds of them, and a differential extraction of such an
// image took gigabytes.
func TestBaseFromFragmentedChunkMemory(t *testing.T) {
	const regions = 128 // per chunk: 4 KiB of data every 32 KiB
	size := int64(6 * chunk)
	f := newDiffFixture(t, size)
	for off := int64(0); off < size; off += chunk / regions {
		f.write(off, 4096, uint64(off))
	}
	f.backup(f.img)
	for n := int64(0); n < size/chunk; n++ {
		f.write(n*chunk+8192, 1, uint64(n)) // one byte more in every chunk
	}
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	var stream bytes.Buffer
	if _, err := File(context.Background(), f.img, &stream, Options{BaseFrom: f.dir}); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	// One buffer per group in flight and the stream itself are a few
	// dozen MiB; a buffer per region is 6*128*4 MiB.
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 256<<20 {
		t.Errorf("extraction allocated %d MiB for a %d MiB image", alloc>>20, size>>20)
	}
	_, recs := records(t, stream.Bytes())
	if len(recs) == 0 {
		t.Fatal("no records for changed chunks")
	}
}
