package faults

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/backy/backy/internal/logtest"
	"github.com/backy/backy/internal/raceflag"
	"github.com/backy/backy/pkg/repo"
	upkeeppkg "github.com/backy/backy/pkg/upkeep"
	"github.com/klauspost/compress/zstd"
)

// flipFile is one file of the flip test's repository, with its bytes as
// backy wrote them.
type flipFile struct {
	kind string // "metadata", "index", "chunk"
	path string
	orig []byte
	// names: what verify's report must mention (a revision id, a chunk hash)
	names []string
	// content is what a chunk file decodes to (nil for the others)
	content []byte
}

// TestFlips flips single bits at random in the metadata, index and chunk
// files of a repository and runs verify after each: every flip in metadata
// and index files must be found and named, and every flip in a chunk file
// that changes what the file decodes to; flips that decode to the same
// bytes are counted apart (verify cannot and need not see them). Verify
// runs in-process (pkg/upkeep.Verify, the code behind backy-store verify)
// so that thousands of flips take seconds; a sample goes through the
// backy-store binary to check its exit status and report.
func TestFlips(t *testing.T) {
	t.Parallel()
	n := scale(300, 3000)
	if raceflag.Enabled && !long {
		n = 150 // verify's decompression under the race detector costs ten times more
	}
	if s := os.Getenv("BACKY_FAULTS_FLIPS"); s != "" {
		fmt.Sscan(s, &n)
	}
	// On tmpfs when there is one: verify syncs the marks it writes, and
	// what is measured here is detection, not durability.
	tmp := t.TempDir()
	if d, err := os.MkdirTemp("/dev/shm", "backy-flips-"); err == nil {
		tmp = d
		t.Cleanup(func() { os.RemoveAll(d) })
	}
	dir := filepath.Join(tmp, "repo")
	im := newImage(t, filepath.Join(tmp, "vm.img"), chunk+4093, 11)
	mustBackup(t, dir, im.path, "s1", "v1")
	im.mutate(t, 2, false)
	mustBackup(t, dir, im.path, "s2", "v2")
	files := flipFiles(t, dir)
	kinds := map[string]int{}
	for _, f := range files {
		kinds[f.kind]++
	}
	t.Logf("repository: %d metadata, %d index and %d chunk files", kinds["metadata"], kinds["index"], kinds["chunk"])

	rng := rand.New(rand.NewPCG(17, uint64(n)))
	type count struct{ flips, found, same, sameFound int }
	counts := map[string]*count{"metadata": {}, "index": {}, "chunk": {}}
	byKind := map[string][]*flipFile{}
	for _, f := range files {
		byKind[f.kind] = append(byKind[f.kind], f)
	}
	cli := scale(6, 30) // of the flips, how many go through the binary
	for i := range n {
		kind := []string{"metadata", "index", "chunk"}[i%3]
		f := byKind[kind][rng.IntN(len(byKind[kind]))]
		pos, bit := rng.IntN(len(f.orig)), uint(rng.IntN(8))
		b := bytes.Clone(f.orig)
		b[pos] ^= 1 << bit
		writeBack(t, f.path, b)
		same := f.kind == "chunk" && decodesTo(b, f.content)
		var found, named bool
		var report string
		if i < cli {
			r := backy(t, nil, "backy-store", "-b", dir, "verify", "--all")
			report = r.stderr
			found = r.code == exitDamaged
			if r.code != 0 && r.code != exitDamaged {
				t.Errorf("flip %d (%s byte %d bit %d): verify exits %d: %s", i, f.path, pos, bit, r.code, r.stderr)
			}
			if r.code == 0 && strings.TrimSpace(r.stdout) != "" {
				t.Errorf("verify printed on stdout: %q", r.stdout)
			}
		} else {
			found, report = verifyInProcess(t, dir)
		}
		named = mentions(report, f.names)
		c := counts[kind]
		c.flips++
		switch {
		case same:
			c.same++
			if found {
				c.sameFound++
			}
		case !found:
			t.Errorf("flip %d of bit %d of byte %d of %s %s (of %d bytes) is not found by verify", i, bit, pos, kind, f.path, len(f.orig))
		case !named:
			t.Errorf("flip %d of bit %d of byte %d of %s %s: verify does not name it: %s", i, bit, pos, kind, f.path, report)
		default:
			c.found++
		}
		restoreFlipped(t, dir, f, files)
	}
	for _, k := range []string{"metadata", "index", "chunk"} {
		c := counts[k]
		t.Logf("%s files: %d single-bit flips, %d changed the content and all %d were found and named by verify; %d decoded to the same bytes (%d of those reported anyway)",
			k, c.flips, c.flips-c.same, c.found, c.same, c.sameFound)
	}
	// The repository is as it was: verify passes.
	if found, report := verifyInProcess(t, dir); found {
		t.Fatalf("after the flips were undone verify still finds damage: %s", report)
	}
}

// flipFiles lists the repository's metadata, index and chunk files.
func flipFiles(t *testing.T, dir string) []*flipFile {
	t.Helper()
	var files []*flipFile
	revs, _ := filepath.Glob(filepath.Join(dir, "revisions", "*"))
	for _, p := range revs {
		id, ext, _ := strings.Cut(filepath.Base(p), ".")
		kind := map[string]string{"rev": "metadata", "idx": "index"}[ext]
		files = append(files, &flipFile{kind: kind, path: p, orig: mustRead(t, p), names: []string{id}})
	}
	chunks, _ := filepath.Glob(filepath.Join(dir, "chunks", "*", "*"))
	buf := make([]byte, chunk)
	for _, p := range chunks {
		h, err := repo.ParseHash(filepath.Base(p))
		if err != nil {
			t.Fatal(err)
		}
		orig := mustRead(t, p)
		content, err := repo.Decompress(buf, h, orig)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, &flipFile{kind: "chunk", path: p, orig: orig, names: []string{h.String(), h.Short()},
			content: bytes.Clone(content)})
	}
	return files
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var zstdDecoder = sync.OnceValue(func() *zstd.Decoder {
	d, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.IgnoreChecksum(true))
	if err != nil {
		panic(err)
	}
	return d
})

// decodesTo reports whether stored bytes still decode to want: the flip
// did not change what the chunk file holds.
func decodesTo(stored, want []byte) bool {
	got, err := zstdDecoder().DecodeAll(stored, nil)
	return err == nil && bytes.Equal(got, want)
}

// verifyInProcess runs the verification of every revision and returns
// whether it found damage, with its report.
func verifyInProcess(t *testing.T, dir string) (bool, string) {
	t.Helper()
	r, err := repo.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	log, report := logtest.New()
	_, err = upkeeppkg.Verify(context.Background(), r, upkeeppkg.VerifyOptions{
		Selection: upkeeppkg.Selection{All: true},
		Options:   upkeeppkg.Options{Workers: 2, Log: log},
	})
	if err != nil && !errors.Is(err, upkeeppkg.ErrDamaged) {
		t.Fatalf("verify: %v", err)
	}
	out := report.String()
	if err != nil {
		out += "\n" + err.Error()
	}
	return err != nil, out
}

// restoreFlipped puts the flipped file back, and every metadata file too:
// verify marks revisions verified or distrusted.
func restoreFlipped(t *testing.T, dir string, f *flipFile, files []*flipFile) {
	t.Helper()
	writeBack(t, f.path, f.orig)
	if f.kind == "chunk" {
		os.Chmod(f.path, 0o444)
	}
	for _, g := range files {
		if g.kind == "metadata" {
			writeBack(t, g.path, g.orig)
		}
	}
}
