package upkeep_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/backy/backy/pkg/repo"
	"github.com/backy/backy/pkg/upkeep"
)

func verify(t *testing.T, r *repo.Repo, sel upkeep.Selection, sample float64) (*upkeep.VerifyResult, *logger, error) {
	t.Helper()
	log := newLogger()
	res, err := upkeep.Verify(context.Background(), r, upkeep.VerifyOptions{
		Options: upkeep.Options{Log: log.log}, Selection: sel, Sample: sample})
	return res, log, err
}

func TestVerifyCleanMarksVerified(t *testing.T) {
	r := newRepo(t)
	a := storeAt(t, r, fullStream(t, image(3, 1, 1), ""), time.Time{})
	b := storeAt(t, r, fullStream(t, image(4, 1), ""), time.Time{}) // shares chunks 0 and 2 with a
	res, log, err := verify(t, r, upkeep.Selection{All: true}, 0)
	if err != nil {
		t.Fatalf("%v\n%s", err, log)
	}
	if res.Chunks != 4 {
		t.Errorf("checked %d chunks, want 4 distinct", res.Chunks)
	}
	for _, id := range []string{a.ID, b.ID} {
		rev := load(t, r, id)
		if rev.Trust != repo.Verified || rev.VerifiedAt == nil || rev.Damage != nil {
			t.Errorf("revision %s: trust %s, verified_at %v, damage %v", id, rev.Trust, rev.VerifiedAt, rev.Damage)
		}
	}
}

func TestVerifyReportsBadAndMissingChunks(t *testing.T) {
	r := newRepo(t)
	old := storeAt(t, r, fullStream(t, image(3, 1), ""), time.Time{})
	img := image(4, 1)
	copy(img[3*chunk:], img[:chunk]) // chunk 0 appears twice
	cur := storeAt(t, r, fullStream(t, img, ""), time.Time{})
	other := storeAt(t, r, fullStream(t, image(2, 50), ""), time.Time{})
	bad, badHash := chunkPath(t, r, cur.ID, 0)
	gone, goneHash := chunkPath(t, r, cur.ID, 2)
	corrupt(t, bad)
	if err := os.Remove(gone); err != nil {
		t.Fatal(err)
	}

	res, log, err := verify(t, r, upkeep.Selection{Spec: cur.ID}, 0)
	if !errors.Is(err, upkeep.ErrDamaged) {
		t.Fatalf("error %v, want ErrDamaged", err)
	}
	if len(res.Bad) != 2 || !errors.Is(res.Bad[badHash], repo.ErrCorruptChunk) || !errors.Is(res.Bad[goneHash], repo.ErrMissingChunk) {
		t.Fatalf("bad chunks %v", res.Bad)
	}
	out := log.String()
	for _, want := range []string{
		fmt.Sprintf("repo: corrupt chunk %s: content does not match its hash: revision %s at offset 0; revision %s at offsets 0, %d", badHash, old.ID, cur.ID, 3*chunk),
		fmt.Sprintf("repo: missing chunk %s: revision %s at offset %d; revision %s at offset %d", goneHash, old.ID, 2*chunk, cur.ID, 2*chunk),
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	// Both revisions using the chunks are distrusted, the selected one
	// and the older one; the unrelated one is left alone.
	for _, id := range []string{old.ID, cur.ID} {
		rev := load(t, r, id)
		if rev.Trust != repo.Distrusted || len(rev.Damage) == 0 {
			t.Errorf("revision %s: trust %s damage %v", id, rev.Trust, rev.Damage)
		}
	}
	if d := load(t, r, cur.ID).Damage; len(d) != 3 || !strings.HasPrefix(d[0], "offset 0: repo: corrupt chunk") {
		t.Errorf("damage of %s: %q", cur.ID, d)
	}
	if rev := load(t, r, other.ID); rev.Trust != repo.Trusted {
		t.Errorf("unrelated revision became %s", rev.Trust)
	}
}

func TestVerifySample(t *testing.T) {
	r := newRepo(t)
	rev := storeAt(t, r, fullStream(t, image(10, 1), ""), time.Time{})
	res, _, err := verify(t, r, upkeep.Selection{}, 30)
	if err != nil {
		t.Fatal(err)
	}
	if res.Chunks != 3 {
		t.Errorf("sampled %d chunks, want 3 of 10", res.Chunks)
	}
	if got := load(t, r, rev.ID); got.Trust != repo.Trusted || got.VerifiedAt != nil {
		t.Errorf("a clean sample changed trust to %s", got.Trust)
	}
	// Damage found by a sample counts: remove every chunk so any sample hits.
	os.RemoveAll(filepath.Join(r.Dir, "chunks"))
	os.Mkdir(filepath.Join(r.Dir, "chunks"), 0o755)
	if _, _, err := verify(t, r, upkeep.Selection{}, 10); !errors.Is(err, upkeep.ErrDamaged) {
		t.Fatalf("error %v", err)
	}
	if got := load(t, r, rev.ID); got.Trust != repo.Distrusted {
		t.Errorf("trust %s after damage in a sample", got.Trust)
	}
}

func TestVerifyOfDistrustedRevision(t *testing.T) {
	r := newRepo(t)
	rev := storeAt(t, r, fullStream(t, image(2, 1), ""), time.Time{})
	if _, err := upkeep.Distrust(r, upkeep.Selection{All: true}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := verify(t, r, upkeep.Selection{}, 0); err != nil {
		t.Fatal(err)
	}
	if got := load(t, r, rev.ID); got.Trust != repo.Verified {
		t.Fatalf("clean distrusted revision not cleared: %s", got.Trust)
	}
	upkeep.Distrust(r, upkeep.Selection{All: true})
	p, _ := chunkPath(t, r, rev.ID, 1)
	corrupt(t, p)
	if _, _, err := verify(t, r, upkeep.Selection{}, 0); !errors.Is(err, upkeep.ErrDamaged) {
		t.Fatalf("error %v", err)
	}
	got := load(t, r, rev.ID)
	if got.Trust != repo.Distrusted || len(got.Damage) != 1 || !strings.HasPrefix(got.Damage[0], fmt.Sprintf("offset %d: repo: corrupt chunk", chunk)) {
		t.Fatalf("trust %s damage %q", got.Trust, got.Damage)
	}
}

func TestVerifyDamagedIndexAndMetadata(t *testing.T) {
	r := newRepo(t)
	a := storeAt(t, r, fullStream(t, image(2, 1), ""), time.Time{})
	b := storeAt(t, r, fullStream(t, image(2, 7), ""), time.Time{})
	c := storeAt(t, r, fullStream(t, image(2, 9), ""), time.Time{})
	corrupt(t, filepath.Join(r.Dir, "revisions", a.ID+".idx"))
	os.WriteFile(filepath.Join(r.Dir, "revisions", b.ID+".rev"), []byte("{not json"), 0o644)

	res, log, err := verify(t, r, upkeep.Selection{All: true}, 0)
	if !errors.Is(err, upkeep.ErrDamaged) {
		t.Fatalf("error %v", err)
	}
	if !strings.Contains(log.String(), "damaged: repo: corrupt metadata: ") || !strings.Contains(log.String(), "damaged: revision "+a.ID+": repo: corrupt index") {
		t.Errorf("report:\n%s", log)
	}
	if got := load(t, r, a.ID); got.Trust != repo.Distrusted || !strings.HasPrefix(got.Damage[0], "index: ") {
		t.Errorf("damaged index: trust %s damage %q", got.Trust, got.Damage)
	}
	if got := load(t, r, c.ID); got.Trust != repo.Verified {
		t.Errorf("the intact revision is %s", got.Trust)
	}
	if len(res.Distrusted) != 1 {
		t.Errorf("distrusted %v", res.Distrusted)
	}
	// Asking for the revision whose metadata is damaged is damage, not "no such revision".
	if _, _, err := verify(t, r, upkeep.Selection{Spec: b.ID}, 0); !errors.Is(err, upkeep.ErrDamaged) {
		t.Errorf("error %v", err)
	}
}

func TestVerifyOnEmptyRepository(t *testing.T) {
	r := newRepo(t)
	if _, _, err := verify(t, r, upkeep.Selection{All: true}, 0); err != nil {
		t.Fatal(err)
	}
	if _, _, err := verify(t, r, upkeep.Selection{}, 0); !errors.Is(err, repo.ErrNoRevision) {
		t.Fatalf("error %v", err)
	}
}

func TestVerifyWhilePurgeHoldsChunks(t *testing.T) {
	r := newRepo(t)
	storeAt(t, r, fullStream(t, image(1, 1), ""), time.Time{})
	l, err := r.TryLock(repo.LockChunks, false)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Unlock()
	before := snapshot(t, r.Dir)
	if _, _, err := verify(t, r, upkeep.Selection{}, 0); !errors.Is(err, repo.ErrBusy) {
		t.Fatalf("error %v", err)
	}
	sameFiles(t, before, snapshot(t, r.Dir))
}

func TestVerifyNotesIndexWithoutMetadata(t *testing.T) {
	r := newRepo(t)
	a := storeAt(t, r, fullStream(t, image(1, 1), ""), time.Time{})
	b := storeAt(t, r, fullStream(t, image(1, 2), ""), time.Time{})
	os.Remove(filepath.Join(r.Dir, "revisions", a.ID+".rev"))
	_, log, err := verify(t, r, upkeep.Selection{All: true}, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := "note: index " + a.ID + " has no metadata: left by an interrupted store (purge removes it), or its metadata was lost"
	if log.String() != want {
		t.Errorf("report %q, want %q", log, want)
	}
	if got := load(t, r, b.ID); got.Trust != repo.Verified {
		t.Errorf("trust %s", got.Trust)
	}
}
