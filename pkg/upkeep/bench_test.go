package upkeep_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/backy/backy/pkg/repo"
	"github.com/backy/backy/pkg/upkeep"
)

// BenchmarkVerify verifies a repository of 64 distinct random 4 MiB chunks
// (256 MiB, incompressible) with every core; bytes/s is chunk content
// re-hashed. The chunk files are in the page cache after the first run, so
// this measures the CPU side (read, decompress, BLAKE3), not the disk.
func BenchmarkVerify(b *testing.B) {
	const chunks = 64
	r := newRepo(b)
	storeAt(b, r, fullStream(b, image(chunks, 1000), ""), time.Time{})
	b.SetBytes(chunks * chunk)
	b.ResetTimer()
	for b.Loop() {
		res, err := upkeep.Verify(context.Background(), r, upkeep.VerifyOptions{Selection: upkeep.Selection{All: true}})
		if err != nil || res.Chunks != chunks {
			b.Fatal(err, res.Chunks)
		}
	}
}

// BenchmarkPurge100k purges a repository holding 100,000 chunk files, of
// which one revision uses 2; the other 99,998 are small files with made-up
// names, created directly in chunks/xx/ before each run.
func BenchmarkPurge100k(b *testing.B) {
	const files = 100_000
	r := newRepo(b)
	storeAt(b, r, fullStream(b, image(2, 2000), ""), time.Time{})
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		fakeChunks(b, r, files-2)
		b.StartTimer()
		res, err := upkeep.Purge(context.Background(), r, upkeep.PurgeOptions{})
		if err != nil || res.Chunks != files || res.Removed != files-2 {
			b.Fatalf("%v %+v", err, res)
		}
	}
	b.ReportMetric(float64(files)*float64(b.N)/b.Elapsed().Seconds(), "files/s")
}

func fakeChunks(b *testing.B, r *repo.Repo, n int) {
	b.Helper()
	var h [32]byte
	for range n {
		rand.Read(h[:])
		name := hex.EncodeToString(h[:])
		dir := filepath.Join(r.Dir, "chunks", name[:2])
		if err := os.MkdirAll(dir, 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte("fake"), 0o444); err != nil {
			b.Fatal(err)
		}
	}
}
