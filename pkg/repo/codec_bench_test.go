package repo_test

import (
	"os"
	"testing"

	"github.com/backy/backy/pkg/extent"
	"github.com/backy/backy/pkg/repo"
)

// BenchmarkChunkCodec measures, on one core, what every byte of a new chunk
// costs a backup (hash, compress) and a restore (decompress and verify),
// over the non-zero 4 MiB blocks of the image named by BACKY_BENCH_IMAGE
// (make bench passes its realistic image). These per-core rates bound
// what any arrangement of the pipeline can reach on a given number of
// cores: a full backup of D bytes cannot take less than
// D / (cores × compress rate).
func BenchmarkChunkCodec(b *testing.B) {
	chunks := benchChunks(b, 64)
	stored := make([][]byte, len(chunks))
	hashes := make([]repo.Hash, len(chunks))
	for i, c := range chunks {
		stored[i] = repo.Compress(nil, c)
		hashes[i] = repo.HashChunk(c)
	}
	b.Run("hash", func(b *testing.B) {
		b.SetBytes(repo.ChunkSize)
		for i := 0; i < b.N; i++ {
			repo.HashChunk(chunks[i%len(chunks)])
		}
	})
	b.Run("compress", func(b *testing.B) {
		b.SetBytes(repo.ChunkSize)
		var out []byte
		var in, written int64
		for i := 0; i < b.N; i++ {
			out = repo.Compress(out, chunks[i%len(chunks)])
			in, written = in+repo.ChunkSize, written+int64(len(out))
		}
		b.ReportMetric(float64(written)/float64(in), "ratio")
	})
	b.Run("decompress+verify", func(b *testing.B) {
		b.SetBytes(repo.ChunkSize)
		dst := make([]byte, repo.ChunkSize)
		for i := 0; i < b.N; i++ {
			k := i % len(chunks)
			if _, err := repo.Decompress(dst, hashes[k], stored[k]); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// benchChunks reads up to limit non-zero 4 MiB blocks of $BACKY_BENCH_IMAGE,
// spread over the whole image.
func benchChunks(b *testing.B, limit int) [][]byte {
	path := os.Getenv("BACKY_BENCH_IMAGE")
	if path == "" {
		b.Skip("BACKY_BENCH_IMAGE is not set (make bench sets it to its realistic image)")
	}
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		b.Fatal(err)
	}
	var nonzero [][]byte
	for off := int64(0); off+repo.ChunkSize <= st.Size(); off += repo.ChunkSize {
		buf := make([]byte, repo.ChunkSize)
		if _, err := f.ReadAt(buf, off); err != nil {
			b.Fatal(err)
		}
		if !extent.IsZero(buf) {
			nonzero = append(nonzero, buf)
		}
	}
	if len(nonzero) == 0 {
		b.Fatalf("%s has no data", path)
	}
	step := max(1, len(nonzero)/limit)
	var picked [][]byte
	for i := 0; i < len(nonzero) && len(picked) < limit; i += step {
		picked = append(picked, nonzero[i])
	}
	return picked
}
