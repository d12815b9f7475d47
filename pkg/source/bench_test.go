package source

import (
	"context"
	"io"
	"os"
	"testing"
)

// BenchmarkSparseExtract streams a 1 TiB sparse file holding 256 MiB of
// data (in 64 runs of 4 MiB spread over the image). Bytes/s counts only the
// data, so it compares directly with BenchmarkReadData, which reads the
// same 256 MiB from a plain file: the target is that the terabyte of holes
// costs nothing.
func BenchmarkSparseExtract(b *testing.B) {
	data := map[int64][]byte{}
	block := make([]byte, BlockSize)
	for i := range block {
		block[i] = byte(i*31 + 1)
	}
	for i := int64(0); i < 64; i++ {
		data[i*(1<<40/64)] = block
	}
	p := sparseFile(b, 1<<40, data)
	b.SetBytes(64 * BlockSize)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := File(context.Background(), p, io.Discard, Options{}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkReadData(b *testing.B) {
	data := map[int64][]byte{}
	block := make([]byte, BlockSize)
	for i := range block {
		block[i] = byte(i*31 + 1)
	}
	for i := int64(0); i < 64; i++ {
		data[i*BlockSize] = block
	}
	p := sparseFile(b, 64*BlockSize, data)
	buf := make([]byte, BlockSize)
	b.SetBytes(64 * BlockSize)
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
	data := map[int64][]byte{}
	block := make([]byte, BlockSize)
	for i := range block {
		block[i] = byte(i*31 + 1)
	}
	for i := int64(0); i < 64; i++ {
		data[i*BlockSize] = block
	}
	p := sparseFile(b, 64*BlockSize, data)
	b.SetBytes(64 * BlockSize)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := File(context.Background(), p, io.Discard, Options{}); err != nil {
			b.Fatal(err)
		}
	}
}
