package faults

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/backy/backy/pkg/extent"
	"github.com/backy/backy/pkg/repo"
)

// corruptRig is a clean repository with two revisions of one image that
// share most of their chunks; each case damages a copy of it.
type corruptRig struct {
	tmp, clean string
	ids        [2]string
	sums       map[string]string // revision id -> SHA-256 of its image
	onlyNew    repo.Hash         // a chunk only the second revision has
	shared     repo.Hash         // a chunk both have
	img        string
}

func newCorruptRig(t *testing.T) *corruptRig {
	tmp := t.TempDir()
	c := &corruptRig{tmp: tmp, clean: filepath.Join(tmp, "clean"), sums: map[string]string{}}
	im := newImage(t, filepath.Join(tmp, "vm.img"), 24<<20+777, 2)
	c.img = im.path
	c.ids[0] = mustBackup(t, c.clean, im.path, "s1", "v1")
	c.sums[c.ids[0]] = fileSum(t, im.path)
	im.mutate(t, 3, false)
	c.ids[1] = mustBackup(t, c.clean, im.path, "s2", "v2")
	c.sums[c.ids[1]] = fileSum(t, im.path)
	r, err := repo.Open(c.clean)
	if err != nil {
		t.Fatal(err)
	}
	ix0, err := r.Index(c.ids[0])
	if err != nil {
		t.Fatal(err)
	}
	ix1, err := r.Index(c.ids[1])
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range ix1.Hashes {
		if h.IsZero() {
			continue
		}
		if slices.Contains(ix0.Hashes, h) {
			c.shared = h
		} else {
			c.onlyNew = h
		}
	}
	if c.shared.IsZero() || c.onlyNew.IsZero() {
		t.Fatal("the test image does not give a shared and a new chunk")
	}
	return c
}

func chunkPath(dir string, h repo.Hash) string {
	s := h.String()
	return filepath.Join(dir, "chunks", s[:2], s)
}

type target struct {
	name  string
	path  func(dir string) string
	users []int    // which revisions (0, 1) need the file
	names []string // what a message about the damage must mention (any of)
}

type damage struct {
	name  string
	apply func(t *testing.T, path string, rng *rand.Rand)
}

func flipBit(t *testing.T, path string, pos int64, bit uint) {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[pos] ^= 1 << bit
	writeBack(t, path, b)
}

// writeBack replaces a file's content in place (chunk files are read-only).
func writeBack(t *testing.T, path string, b []byte) {
	os.Chmod(path, 0o644)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

var damages = []damage{
	{"flip-first-byte", func(t *testing.T, p string, rng *rand.Rand) { flipBit(t, p, 0, uint(rng.IntN(8))) }},
	{"flip-random-bit", func(t *testing.T, p string, rng *rand.Rand) {
		st, _ := os.Stat(p)
		flipBit(t, p, rng.Int64N(st.Size()), uint(rng.IntN(8)))
	}},
	{"flip-last-byte", func(t *testing.T, p string, rng *rand.Rand) {
		st, _ := os.Stat(p)
		flipBit(t, p, st.Size()-1, uint(rng.IntN(8)))
	}},
	{"truncate-half", func(t *testing.T, p string, rng *rand.Rand) {
		b, _ := os.ReadFile(p)
		writeBack(t, p, b[:len(b)/2])
	}},
	{"truncate-one-byte", func(t *testing.T, p string, rng *rand.Rand) {
		b, _ := os.ReadFile(p)
		if strings.HasSuffix(p, ".rev") {
			b = bytes.TrimRight(b, "\n") // the final newline of JSON is not content
		}
		writeBack(t, p, b[:len(b)-1])
	}},
	{"empty", func(t *testing.T, p string, rng *rand.Rand) { writeBack(t, p, nil) }},
	{"delete", func(t *testing.T, p string, rng *rand.Rand) {
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
	}},
}

func (c *corruptRig) targets() []target {
	return []target{
		{"chunk-new", func(d string) string { return chunkPath(d, c.onlyNew) }, []int{1},
			[]string{c.onlyNew.String(), c.onlyNew.Short()}},
		{"chunk-shared", func(d string) string { return chunkPath(d, c.shared) }, []int{0, 1},
			[]string{c.shared.String(), c.shared.Short()}},
		{"index", func(d string) string { return filepath.Join(d, "revisions", c.ids[1]+".idx") }, []int{1},
			[]string{c.ids[1]}},
		{"metadata", func(d string) string { return filepath.Join(d, "revisions", c.ids[1]+".rev") }, []int{1},
			[]string{c.ids[1]}},
	}
}

func mentions(s string, names []string) bool {
	for _, n := range names {
		if strings.Contains(s, n) {
			return true
		}
	}
	return false
}

// TestCorruption damages chunk, index and metadata files (bit flips,
// truncation, deletion) and checks that restore refuses the revisions that
// need them with a non-zero exit naming the damage, that nothing ever exits
// 0 with wrong bytes, and that verify (once it exists) finds every one.
func TestCorruption(t *testing.T) {
	t.Parallel()
	c := newCorruptRig(t)
	rng := rand.New(rand.NewPCG(3, 3))
	for _, tg := range c.targets() {
		for _, dm := range damages {
			if tg.name == "metadata" && strings.HasPrefix(dm.name, "flip") {
				continue // metadata flips: TestCorruptMetadataBits
			}
			t.Run(tg.name+"/"+dm.name, func(t *testing.T) {
				dir := filepath.Join(c.tmp, tg.name+"-"+dm.name)
				copyTree(t, c.clean, dir)
				dm.apply(t, tg.path(dir), rng)
				c.checkDamaged(t, dir, tg)
			})
		}
	}
}

// checkDamaged restores both revisions (to stdout and to a file) from a
// damaged repository.
func (c *corruptRig) checkDamaged(t *testing.T, dir string, tg target) {
	for i, id := range c.ids {
		needs := slices.Contains(tg.users, i)
		sum, r := restoreSum(t, dir, id)
		fsum, fr := restoreFile(t, dir, id, filepath.Join(dir, "..", "out-"+filepath.Base(dir)))
		os.Remove(filepath.Join(dir, "..", "out-"+filepath.Base(dir)))
		for _, x := range []struct {
			how string
			sum string
			r   result
		}{{"to stdout", sum, r}, {"to a file", fsum, fr}} {
			switch {
			case x.r.code == 0 && x.sum != c.sums[id]:
				t.Fatalf("restore %s of revision %d exits 0 with wrong bytes", x.how, i)
			case x.r.code == 0 && needs:
				t.Fatalf("restore %s of revision %d succeeds although its %s is damaged", x.how, i, tg.name)
			case x.r.code < 0:
				t.Fatalf("restore %s of revision %d died: %v", x.how, i, x.r)
			case x.r.code != 0 && needs:
				if x.r.code != exitDamaged && x.r.code != exitNotFound {
					t.Errorf("restore %s of revision %d: exit %d, want %d (damaged): %s", x.how, i, x.r.code, exitDamaged, x.r.stderr)
				}
				if !mentions(x.r.stderr, tg.names) {
					t.Errorf("restore %s of revision %d: the message does not name the damaged %s: %s", x.how, i, tg.name, x.r.stderr)
				}
				if x.how == "to a file" && x.sum != "" {
					t.Errorf("a failed restore left a target file behind")
				}
			case x.r.code != 0:
				t.Logf("restore %s of undamaged revision %d also fails: %v", x.how, i, x.r)
			}
		}
	}
	if upkeep["verify"] {
		r := backy(t, nil, "backy-store", "-b", dir, "verify")
		if r.code == 0 && tg.name == "metadata" && strings.HasSuffix(dir, "-delete") {
			// With its metadata gone the revision no longer exists; its index
			// looks like one left by a store killed between its two renames,
			// so verify can only note it.
			if !mentions(r.stdout+r.stderr, tg.names) {
				t.Errorf("verify does not mention the index left without metadata: %s%s", r.stdout, r.stderr)
			}
			return
		}
		if r.code == 0 {
			t.Errorf("verify exits 0 on a repository with a damaged %s: %s%s", tg.name, r.stdout, r.stderr)
		} else if !mentions(r.stdout+r.stderr, tg.names) {
			t.Errorf("verify does not name the damaged %s: %s%s", tg.name, r.stdout, r.stderr)
		}
	}
}

// TestCorruptMetadataBits flips single bits all over a revision's metadata
// file: metadata is sealed, so restore refuses every one (exit 4, naming the
// revision) and none exits 0 with wrong bytes. (TestFlips does the same
// for verify, over every kind of file.)
func TestCorruptMetadataBits(t *testing.T) {
	t.Parallel()
	c := newCorruptRig(t)
	rng := rand.New(rand.NewPCG(4, 4))
	meta := func(d string) string { return filepath.Join(d, "revisions", c.ids[1]+".rev") }
	orig, err := os.ReadFile(meta(c.clean))
	if err != nil {
		t.Fatal(err)
	}
	idAt := int64(bytes.Index(orig, []byte(c.ids[1])))
	n := scale(16, 200)
	dir := filepath.Join(c.tmp, "meta")
	copyTree(t, c.clean, dir)
	undetected := 0
	for i := range n {
		pos := rng.Int64N(int64(len(orig)))
		if i == 0 {
			pos = idAt // a flip in the id is always caught
		}
		writeBack(t, meta(dir), orig)
		bit := uint(rng.IntN(8))
		flipBit(t, meta(dir), pos, bit)
		sum, r := restoreSum(t, dir, c.ids[1])
		switch {
		case r.code == 0 && sum != c.sums[c.ids[1]]:
			t.Fatalf("flip at byte %d: restore exits 0 with wrong bytes", pos)
		case r.code < 0:
			t.Fatalf("flip at byte %d: restore died: %v", pos, r)
		case r.code == 0:
			undetected++
			t.Errorf("a flipped bit %d of byte %d of the sealed metadata goes unnoticed by restore", bit, pos)
		case r.code != exitDamaged || !strings.Contains(r.stderr, c.ids[1]):
			t.Errorf("flip at byte %d: restore %v, want exit %d naming %s", pos, r, exitDamaged, c.ids[1])
		}
	}
	t.Logf("%d of %d single-bit flips in %s went unnoticed by restore; none gave wrong bytes", undetected, n, filepath.Base(meta(dir)))
}

// TestBackupAfterDamage makes a new full backup of an image whose chunks
// are damaged in the repository. The new backup has every byte in hand, so
// it must either fail or give a revision that restores bit-exactly — never
// report success for a revision that cannot be restored. Once verify exists,
// it must distrust the damaged revision so that the next backup re-checks
// and repairs the chunk, after which the old revision restores again too.
func TestBackupAfterDamage(t *testing.T) {
	t.Parallel()
	c := newCorruptRig(t)
	t.Run("deleted-chunk", func(t *testing.T) {
		dir := filepath.Join(c.tmp, "deleted")
		copyTree(t, c.clean, dir)
		os.Remove(chunkPath(dir, c.onlyNew))
		r := backup(t, dir, c.img, "s3", "v3")
		if r.code != 0 {
			return // refusing is fine
		}
		id := strings.TrimSpace(r.stdout)
		if sum, rr := restoreSum(t, dir, id); rr.code != 0 || sum != c.sums[c.ids[1]] {
			t.Fatalf("backy-store exits 0 for revision %s, which does not restore (%v): chunk %s of the parent's index was reused although it is gone",
				id, rr, c.onlyNew.Short())
		}
	})
	t.Run("differential-lost-untouched-chunk", func(t *testing.T) {
		// backy-extract --base-from sends only what differs from the
		// newest revision's index: a chunk lost from the repository
		// never comes again. The store must refuse rather than carry the
		// lost chunk into a revision that does not restore, and distrust
		// the parent so that the next run is full and repairs it.
		dir := filepath.Join(c.tmp, "difflost")
		copyTree(t, c.clean, dir)
		os.Remove(chunkPath(dir, c.onlyNew))
		diff := func() result {
			ext := backy(t, nil, "backy-extract", "file", "--base-from", dir, c.img)
			if ext.code != 0 {
				t.Fatalf("backy-extract --base-from: %v", ext)
			}
			return storeStream(t, dir, []byte(ext.stdout), "v3")
		}
		r := diff()
		if r.code != exitDamaged || !strings.Contains(r.stderr, c.onlyNew.String()) || !strings.Contains(r.stderr, c.ids[1]+" lacks it") {
			t.Fatalf("a differential backup over a lost chunk: %v, want exit %d naming chunk %s and revision %s", r, exitDamaged, c.onlyNew.Short(), c.ids[1])
		}
		if st := backy(t, nil, "backy-store", "-b", dir, "status"); !regexp.MustCompile(c.ids[1] + `.*distrusted`).MatchString(st.stdout) {
			t.Fatalf("status after the refusal: %v, want %s distrusted", st, c.ids[1])
		}
		r = diff() // full now: the newest revision is distrusted
		if r.code != 0 {
			t.Fatalf("the backup after the refusal: %v", r)
		}
		for _, id := range []string{strings.TrimSpace(r.stdout), c.ids[1]} {
			if sum, rr := restoreSum(t, dir, id); rr.code != 0 || sum != c.sums[c.ids[1]] {
				t.Fatalf("revision %s after the repairing backup: %v", id, rr)
			}
		}
	})
	t.Run("differential-over-damaged-base", func(t *testing.T) {
		// A differential stream that rewrites part of a damaged chunk must
		// fail naming it: the rest of the chunk would come from bad bytes.
		dir := filepath.Join(c.tmp, "diffbase")
		copyTree(t, c.clean, dir)
		r, err := repo.Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		ix, err := r.Index(c.ids[1])
		if err != nil {
			t.Fatal(err)
		}
		n := slices.Index(ix.Hashes, c.onlyNew)
		p := chunkPath(dir, c.onlyNew)
		st, _ := os.Stat(p)
		flipBit(t, p, st.Size()/2, 5)
		before := snapshotRepo(t, dir)
		var buf bytes.Buffer
		w, err := extent.NewWriter(&buf, extent.Header{Kind: extent.Differential, Size: ix.Size, Source: "file:x", Snapshot: "s3", Base: "s2"})
		if err != nil {
			t.Fatal(err)
		}
		if err := w.WriteData(int64(n)*chunk+100, []byte("patched")); err != nil {
			t.Fatal(err)
		}
		w.Close()
		res := storeStream(t, dir, buf.Bytes(), "v3")
		if res.code != exitDamaged || !strings.Contains(res.stderr, c.onlyNew.String()) {
			t.Fatalf("a differential stream over a damaged base chunk: %v, want exit %d naming chunk %s", res, exitDamaged, c.onlyNew.Short())
		}
		if d := diffSnapshots(before, snapshotRepo(t, dir)); len(d) > 0 {
			t.Fatalf("the refused stream changed the repository: %v", d)
		}
	})
	t.Run("flipped-chunk", func(t *testing.T) {
		if !upkeep["verify"] {
			t.Skip("backy-store has no verify command yet")
		}
		dir := filepath.Join(c.tmp, "flipped")
		copyTree(t, c.clean, dir)
		p := chunkPath(dir, c.onlyNew)
		st, _ := os.Stat(p)
		flipBit(t, p, st.Size()/2, 3)
		if r := backy(t, nil, "backy-store", "-b", dir, "verify"); r.code != exitDamaged {
			t.Fatalf("verify of a flipped chunk: %v, want exit %d", r, exitDamaged)
		}
		for _, rev := range mustStatus(t, dir) {
			if rev.ID == c.ids[1] && rev.Trust != "distrusted" {
				t.Fatalf("verify found damage in %s but left it %q", rev.ID, rev.Trust)
			}
		}
		id := mustBackup(t, dir, c.img, "s3", "v3")
		for _, x := range [][2]string{{id, c.sums[c.ids[1]]}, {c.ids[1], c.sums[c.ids[1]]}} {
			if sum, r := restoreSum(t, dir, x[0]); r.code != 0 || sum != x[1] {
				t.Fatalf("after a backup over a distrusted revision, %s does not restore: %v", x[0], r)
			}
		}
	})
}
