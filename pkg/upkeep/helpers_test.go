package upkeep_test

import (
	"bytes"
	"context"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/backy/backy/internal/clitest"
	"github.com/backy/backy/internal/logtest"

	"github.com/backy/backy/pkg/extent"
	"github.com/backy/backy/pkg/repo"
	"github.com/backy/backy/pkg/restore"
	"github.com/backy/backy/pkg/source"
	"github.com/backy/backy/pkg/store"
)

const (
	MiB   = 1 << 20
	chunk = repo.ChunkSize
)

func newRepo(t testing.TB) *repo.Repo {
	t.Helper()
	r, err := repo.OpenOrCreate(filepath.Join(t.TempDir(), "repo"))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// image returns n chunks of data: chunk i is random from seed+i, or zero
// when seed+i is listed in zeros.
func image(n int, seed uint64, zeros ...int) []byte {
	b := make([]byte, n*chunk)
	for i := range n {
		if containsInt(zeros, i) {
			continue
		}
		var key [32]byte
		key[0], key[1] = byte(seed+uint64(i)), byte((seed+uint64(i))>>8)
		rand.NewChaCha8(key).Read(b[i*chunk : (i+1)*chunk])
	}
	return b
}

func containsInt(list []int, v int) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// fullStream encodes data as a full extent stream, zero chunks as zero records.
func fullStream(t testing.TB, data []byte, snap string) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := extent.NewWriter(&buf, extent.Header{Kind: extent.Full, Size: int64(len(data)), Snapshot: snap})
	if err != nil {
		t.Fatal(err)
	}
	for off := 0; off < len(data); off += chunk {
		p := data[off:min(off+chunk, len(data))]
		if extent.IsZero(p) {
			err = w.WriteZero(int64(off), int64(len(p)))
		} else {
			err = w.WriteData(int64(off), p)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// sampleOf writes data to a file and has the real sample producer (the one
// behind backy-extract file --sample) make a stream of it.
func sampleOf(t testing.TB, data []byte, percent float64) []byte {
	t.Helper()
	p := filepath.Join(t.TempDir(), "img")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := source.File(context.Background(), p, &buf, source.Options{Sample: percent, Seed: 42}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

var clock = struct {
	sync.Mutex
	t time.Time
}{t: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)}

// storeAt stores a stream as a revision taken at time at (zero: a clock
// that moves on a minute per revision).
func storeAt(t testing.TB, r *repo.Repo, stream []byte, at time.Time, tags ...string) *repo.Revision {
	t.Helper()
	if at.IsZero() {
		clock.Lock()
		clock.t = clock.t.Add(time.Minute)
		at = clock.t
		clock.Unlock()
	}
	rev, err := store.Store(context.Background(), r, bytes.NewReader(stream), store.Options{
		Tags: tags, Now: func() time.Time { return at }})
	if err != nil {
		t.Fatal(err)
	}
	return rev
}

func load(t testing.TB, r *repo.Repo, id string) *repo.Revision {
	t.Helper()
	rev, err := r.LoadRevision(id)
	if err != nil {
		t.Fatal(err)
	}
	return rev
}

func restored(t testing.TB, r *repo.Repo, id string) []byte {
	t.Helper()
	rev := load(t, r, id)
	ix, err := r.Index(id)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := restore.Raw(context.Background(), r, rev, ix, &buf, restore.Options{}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// chunkPath is where the chunk holding data[n*chunk:] of revision id lives.
func chunkPath(t testing.TB, r *repo.Repo, id string, n int) (string, repo.Hash) {
	t.Helper()
	ix, err := r.Index(id)
	if err != nil {
		t.Fatal(err)
	}
	h := ix.Hashes[n]
	return filepath.Join(r.Dir, "chunks", h.String()[:2], h.String()), h
}

// corrupt flips a byte in the middle of a file.
func corrupt(t testing.TB, path string) {
	t.Helper()
	if err := clitest.FlipByte(path); err != nil {
		t.Fatal(err)
	}
}

// snapshot maps every file and directory under dir but locks/ to the hash
// of its content (clitest.TreeDigest, as the command tests use).
func snapshot(t testing.TB, dir string) map[string]string {
	t.Helper()
	d, err := clitest.TreeDigest(dir)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, line := range strings.Split(strings.TrimSuffix(d, "\n"), "\n") {
		name, sum, _ := strings.Cut(line, " ")
		m[name] = sum
	}
	return m
}

func sameFiles(t testing.TB, before, after map[string]string) {
	t.Helper()
	var diff []string
	for k, v := range before {
		if a, ok := after[k]; !ok || a != v {
			diff = append(diff, "changed or gone: "+k)
		}
	}
	for k := range after {
		if _, ok := before[k]; !ok {
			diff = append(diff, "new: "+k)
		}
	}
	sort.Strings(diff)
	if len(diff) > 0 {
		t.Fatalf("repository changed:\n%s", strings.Join(diff, "\n"))
	}
}

// logger collects report lines.
type logger struct {
	*logtest.Lines
	log *slog.Logger
}

func newLogger() *logger {
	log, lines := logtest.New()
	return &logger{lines, log}
}

// cloneAs copies revision id under a new id (to make ids share a prefix).
func cloneAs(t testing.TB, r *repo.Repo, id, newID string, at time.Time) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(r.Dir, "revisions", id+".idx"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(r.Dir, "revisions", newID+".idx"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	rev := load(t, r, id)
	rev.ID, rev.Time = newID, at
	if err := r.SaveRevision(rev); err != nil {
		t.Fatal(err)
	}
}
