package nbdrepo

import (
	"testing"

	"github.com/backy/backy/pkg/repo"
)

// BenchmarkSequentialRead reads a 64 MiB revision from start to end in
// 256 KiB requests (nbdcopy's size), as one connection would: every chunk
// is read from disk (the page cache), decompressed and verified once, the
// next ones ahead on other cores. A cache smaller than the image makes every
// pass start cold.
//
//	go test -run '^$' -bench SequentialRead ./pkg/nbdrepo
func BenchmarkSequentialRead(b *testing.B) {
	data := image(16*repo.ChunkSize, 1)
	for i := range data { // compressible, like file system contents
		if i%3 == 0 {
			data[i] = 'a'
		}
	}
	dir := b.TempDir()
	backup(b, dir, data)
	c := openCatalog(b, dir, Options{CacheChunks: 8})
	e, err := c.Open("")
	if err != nil {
		b.Fatal(err)
	}
	p := make([]byte, 256<<10)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		for off := int64(0); off < int64(len(data)); off += int64(len(p)) {
			if _, err := e.ReadAt(p, off); err != nil {
				b.Fatal(err)
			}
		}
	}
}
