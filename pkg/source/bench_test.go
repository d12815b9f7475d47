package source

import (
	"context"
	"io"
	"os"
	"testing"

	"github.com/backy/backy/pkg/repo"
)

// BenchmarkSparseExtract streams a 1 TiB sparse file holding 256 MiB of
// data (in 64 runs of 4 MiB spread over the image). Bytes/s counts only the
// data, so it compares directly with BenchmarkReadData, which reads the
// same 256 MiB from a plain file: the target is that the terabyte of holes
// costs nothing.
func BenchmarkSparseExtract(b *testing.B) {
	p := blockImage(b, 1<<40)
	b.SetBytes(64 * repo.ChunkSize)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := File(context.Background(), p, io.Discard, Options{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSparseSample takes a 1% sample of the same terabyte: 2,621
// blocks, nearly all holes, which are not read (SEEK_DATA).
func BenchmarkSparseSample(b *testing.B) {
	p := blockImage(b, 1<<40)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := File(context.Background(), p, io.Discard, Options{Sample: 1, Seed: 7}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkReadData(b *testing.B) {
	p := blockImage(b, 64*repo.ChunkSize)
	buf := make([]byte, repo.ChunkSize)
	b.SetBytes(64 * repo.ChunkSize)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		f, err := os.Open(p)
		if err != nil {
			b.Fatal(err)
		}
		for {
			if _, err := io.ReadFull(f, buf); err != nil {
				break
			}
		}
		f.Close()
	}
}

// BenchmarkDenseExtract streams a plain 256 MiB file of the same data as
// BenchmarkSparseExtract: the two should run at the same rate, showing
// that the terabyte of holes costs nothing.
func BenchmarkDenseExtract(b *testing.B) {
	p := blockImage(b, 64*repo.ChunkSize)
	b.SetBytes(64 * repo.ChunkSize)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := File(context.Background(), p, io.Discard, Options{}); err != nil {
			b.Fatal(err)
		}
	}
}

// blockImage makes a file of size bytes holding 64 blocks of data spread
// evenly over it (back to back when size is 64 blocks), holes elsewhere.
func blockImage(b *testing.B, size int64) string {
	b.Helper()
	block := make([]byte, repo.ChunkSize)
	for i := range block {
		block[i] = byte(i*31 + 1)
	}
	data := map[int64][]byte{}
	for i := int64(0); i < 64; i++ {
		data[i*(size/64)] = block
	}
	return sparseFile(b, size, data)
}
