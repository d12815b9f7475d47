package faults

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/backy/backy/pkg/extent"
)

// vectorDir holds the extent stream test vectors of pkg/extent.
const vectorDir = "../../pkg/extent/testdata"

// badStoreRig is a repository with one revision; every bad stream must
// leave it exactly as it is.
type badStoreRig struct {
	dir    string
	before map[string]string
	img    string
}

func newBadStoreRig(t *testing.T) *badStoreRig {
	tmp := t.TempDir()
	b := &badStoreRig{dir: filepath.Join(tmp, "repo")}
	im := newImage(t, filepath.Join(tmp, "vm.img"), 12<<20+4321, 5)
	b.img = im.path
	mustBackup(t, b.dir, im.path, "s1", "v1")
	b.before = snapshotRepo(t, b.dir)
	return b
}

// refuse feeds a stream that must be refused and checks exit code, the
// one-line message and an unchanged repository.
func (b *badStoreRig) refuse(t *testing.T, what string, stream []byte, wantCode int) result {
	t.Helper()
	r := storeStream(t, b.dir, stream, "bad")
	switch {
	case r.code == 0:
		t.Fatalf("%s: backy-store accepted it and made revision %s", what, strings.TrimSpace(r.stdout))
	case r.code < 0 || strings.Contains(r.stderr, "panic:") || strings.Contains(r.stderr, "goroutine "):
		t.Fatalf("%s: backy-store crashed: %v", what, r)
	case wantCode != 0 && r.code != wantCode:
		t.Errorf("%s: exit %d, want %d: %s", what, r.code, wantCode, strings.TrimSpace(r.stderr))
	}
	oneLine(t, what, r)
	if d := diffSnapshots(b.before, snapshotRepo(t, b.dir)); len(d) > 0 {
		t.Fatalf("%s: a refused stream changed the repository: %v", what, d)
	}
	return r
}

// TestBadStreamVectors feeds every invalid test vector of the extent stream
// to backy-store: exit 3 (bad input), one line on stderr, nothing on stdout,
// the repository unchanged.
func TestBadStreamVectors(t *testing.T) {
	t.Parallel()
	b := newBadStoreRig(t)
	files, err := filepath.Glob(filepath.Join(vectorDir, "invalid-*.bxs"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no invalid vectors in %s", vectorDir)
	}
	for _, f := range files {
		stream, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		b.refuse(t, filepath.Base(f), stream, exitBadInput)
	}
	t.Logf("%d invalid vectors refused", len(files))

	// Streams that are well formed but wrong for this repository.
	base := filepath.Join(t.TempDir(), "base.img")
	copyFile(t, b.img, base)
	b.refuse(t, "differential stream on the wrong base", diffStream(t, base, b.img, "not-s1", "s2"), exitBadInput)
	sample, err := exec.Command(filepath.Join(binDir, "backy-extract"), "file", "--sample", "50%", b.img).Output()
	if err != nil {
		t.Fatal(err)
	}
	b.refuse(t, "sample stream", sample, exitBadInput)
	empty := t.TempDir()
	if r := storeStream(t, filepath.Join(empty, "new"), nil); r.code == 0 {
		t.Fatalf("an empty stdin made a revision")
	}
	if _, err := os.Stat(filepath.Join(empty, "new")); err == nil {
		t.Fatalf("a refused stream into a new directory left a repository there")
	}
}

// TestBadStreamMutations feeds random mutations of valid streams (bit
// flips, truncation, inserted, deleted and repeated bytes) to backy-store.
// Whatever pkg/extent's reader rejects, backy-store must refuse with exit
// 3 and an unchanged repository; a mutation that happens to stay valid may
// be stored, and must then restore to what the stream says.
func TestBadStreamMutations(t *testing.T) {
	t.Parallel()
	b := newBadStoreRig(t)
	var seeds [][]byte
	full, err := exec.Command(filepath.Join(binDir, "backy-extract"), "file", "--snapshot", "s9", b.img).Output()
	if err != nil {
		t.Fatal(err)
	}
	seeds = append(seeds, full)
	for _, name := range []string{"valid-full.bxs", "valid-tiny-records.bxs", "valid-odd-size.bxs", "valid-long-names.bxs"} {
		s, err := os.ReadFile(filepath.Join(vectorDir, name))
		if err != nil {
			t.Fatal(err)
		}
		seeds = append(seeds, s)
	}
	rng := rand.New(rand.NewPCG(6, 6))
	n := scale(150, 3000)
	counts := map[string]int{}
	for i := range n {
		seed := seeds[rng.IntN(len(seeds))]
		m, how := mutate(rng, seed)
		counts[how]++
		if streamValid(m) {
			counts["still valid"]++
			if r := storeStream(t, b.dir, m, "mutant"); r.code != 0 {
				t.Errorf("mutation %d (%s) is a valid stream, but backy-store refused it: %v", i, how, r)
			}
			// It is a real revision now: start over from a clean repository.
			b = newBadStoreRig(t)
			continue
		}
		b.refuse(t, "mutation "+how, m, exitBadInput)
	}
	t.Logf("%d mutations: %v", n, counts)
}

// streamValid decodes a whole stream with pkg/extent.
func streamValid(s []byte) bool {
	r, err := extent.NewReader(bytes.NewReader(s))
	if err != nil {
		return false
	}
	for {
		_, err := r.Next()
		if errors.Is(err, io.EOF) {
			return true
		}
		if err != nil {
			return false
		}
	}
}

func mutate(rng *rand.Rand, s []byte) ([]byte, string) {
	m := append([]byte(nil), s...)
	pos := rng.IntN(len(m))
	switch rng.IntN(7) {
	case 0:
		for range 1 + rng.IntN(3) {
			m[rng.IntN(len(m))] ^= 1 << rng.IntN(8)
		}
		return m, "bit flips"
	case 1:
		return m[:pos], "truncated"
	case 2:
		ins := make([]byte, 1+rng.IntN(64))
		for i := range ins {
			ins[i] = byte(rng.IntN(256))
		}
		return append(m[:pos], append(ins, s[pos:]...)...), "inserted bytes"
	case 3:
		end := min(len(m), pos+1+rng.IntN(4096))
		return append(m[:pos], s[end:]...), "deleted bytes"
	case 4:
		end := min(len(m), pos+1+rng.IntN(4096))
		return append(m[:end], s[pos:]...), "repeated bytes"
	case 5:
		for i := pos; i < min(len(m), pos+8); i++ {
			m[i] = byte(rng.IntN(256))
		}
		return m, "overwritten word"
	default:
		return append(m, s[:1+rng.IntN(min(len(s), 64))]...), "trailing bytes"
	}
}
