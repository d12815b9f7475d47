package store_test

import (
	"bytes"
	"context"
	"io"
	"testing"

	"github.com/backy/backy/pkg/extent"
	"github.com/backy/backy/pkg/repo"
	"github.com/backy/backy/pkg/restore"
	"github.com/backy/backy/pkg/store"
)

// benchStream is a full stream of 64 MiB of half-compressible data: each
// 4 KiB block is 2 KiB of random bytes then 2 KiB of text.
func benchStream(b *testing.B, seed uint64) []byte {
	b.Helper()
	const size = 64 << 20
	data := randomBytes(size, seed)
	text := bytes.Repeat([]byte("backy block-based backup "), 100)
	for off := 2048; off < size; off += 4096 {
		copy(data[off:off+2048], text)
	}
	var buf bytes.Buffer
	w, _ := extent.NewWriter(&buf, extent.Header{Kind: extent.Full, Size: size})
	w.WriteData(0, data)
	w.Close()
	return buf.Bytes()
}

func benchRepo(b *testing.B) *repo.Repo {
	b.Helper()
	r, err := repo.OpenOrCreate(b.TempDir() + "/repo")
	if err != nil {
		b.Fatal(err)
	}
	return r
}

// BenchmarkStoreFull stores new data: hash, compress, write, syncfs.
func BenchmarkStoreFull(b *testing.B) {
	stream := benchStream(b, 1)
	b.SetBytes(int64(len(stream)))
	for i := 0; i < b.N; i++ {
		r := benchRepo(b)
		if _, err := store.Store(context.Background(), r, bytes.NewReader(stream), store.Options{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkStoreUnchanged stores the same data again: hash and reuse only.
func BenchmarkStoreUnchanged(b *testing.B) {
	stream := benchStream(b, 2)
	r := benchRepo(b)
	if _, err := store.Store(context.Background(), r, bytes.NewReader(stream), store.Options{}); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(stream)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := store.Store(context.Background(), r, bytes.NewReader(stream), store.Options{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRestoreRaw reads, decompresses and verifies every chunk.
func BenchmarkRestoreRaw(b *testing.B) {
	stream := benchStream(b, 3)
	r := benchRepo(b)
	rev, err := store.Store(context.Background(), r, bytes.NewReader(stream), store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	ix, _ := r.Index(rev.ID)
	b.SetBytes(rev.Size)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := restore.Raw(context.Background(), r, rev, ix, io.Discard, restore.Options{}); err != nil {
			b.Fatal(err)
		}
	}
}
