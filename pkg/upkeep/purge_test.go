package upkeep_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/backy/backy/pkg/repo"
	"github.com/backy/backy/pkg/store"
	"github.com/backy/backy/pkg/upkeep"
)

func purge(t testing.TB, r *repo.Repo, opt upkeep.PurgeOptions) (*upkeep.PurgeResult, error) {
	t.Helper()
	return upkeep.Purge(context.Background(), r, opt)
}

func countChunks(t testing.TB, r *repo.Repo) int {
	t.Helper()
	n := 0
	if err := r.Chunks.Walk(func(repo.Hash) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestPurgeRemovesUnreferencedChunksAndLeftovers(t *testing.T) {
	r := newRepo(t)
	a := storeAt(t, r, fullStream(t, image(4, 1), ""), time.Time{})   // chunks 1..4
	b := storeAt(t, r, fullStream(t, image(4, 3), ""), time.Time{})   // shares 3, 4 with a
	c := storeAt(t, r, fullStream(t, image(2, 100), ""), time.Time{}) // its own
	if _, err := upkeep.Forget(r, a.ID, false); err != nil {
		t.Fatal(err)
	}
	// Leftovers of an interrupted store: a chunk batch, a temp file and an
	// index that was never followed by its metadata.
	os.MkdirAll(filepath.Join(r.TmpDir(), "batch-123", "x"), 0o755)
	os.WriteFile(filepath.Join(r.TmpDir(), "abc.rev.1.tmp"), []byte("x"), 0o644)
	idx, _ := os.ReadFile(filepath.Join(r.Dir, "revisions", c.ID+".idx"))
	os.WriteFile(filepath.Join(r.Dir, "revisions", "orphanorphan1234.idx"), idx, 0o644)
	// A file purge does not know stays.
	os.WriteFile(filepath.Join(r.Dir, "chunks", "README"), []byte("x"), 0o644)

	dry, err := purge(t, r, upkeep.PurgeOptions{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if countChunks(t, r) != 8 || dry.Removed != 2 || dry.Tmp != 2 || dry.Indexes != 1 {
		t.Fatalf("dry run: %+v, %d chunks", dry, countChunks(t, r))
	}
	res, err := purge(t, r, upkeep.PurgeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := upkeep.PurgeResult{Revisions: 2, Chunks: 8, Referenced: 6, Removed: 2, Tmp: 2, Indexes: 1}
	res.Duration = 0
	if !reflect.DeepEqual(*res, want) {
		t.Fatalf("result %+v, want %+v", *res, want)
	}
	if n := countChunks(t, r); n != 6 {
		t.Fatalf("%d chunks left", n)
	}
	if ents, _ := os.ReadDir(r.TmpDir()); len(ents) != 0 {
		t.Errorf("tmp/ still holds %v", ents)
	}
	if _, err := os.Stat(filepath.Join(r.Dir, "revisions", "orphanorphan1234.idx")); !os.IsNotExist(err) {
		t.Errorf("orphan index: %v", err)
	}
	if _, err := os.Stat(filepath.Join(r.Dir, "chunks", "README")); err != nil {
		t.Errorf("foreign file: %v", err)
	}
	if !bytes.Equal(restored(t, r, b.ID), image(4, 3)) || !bytes.Equal(restored(t, r, c.ID), image(2, 100)) {
		t.Fatal("a kept revision no longer restores")
	}
	if _, _, err := verify(t, r, upkeep.Selection{All: true}, 0); err != nil {
		t.Fatal(err)
	}
}

func TestPurgeRefusesWhenAnIndexOrMetadataIsUnreadable(t *testing.T) {
	for _, what := range []string{"corrupt index", "missing index", "corrupt metadata"} {
		t.Run(what, func(t *testing.T) {
			r := newRepo(t)
			a := storeAt(t, r, fullStream(t, image(2, 1), ""), time.Time{})
			b := storeAt(t, r, fullStream(t, image(2, 5), ""), time.Time{})
			storeAt(t, r, fullStream(t, image(1, 9), ""), time.Time{})
			upkeep.Forget(r, b.ID, false) // leaves garbage that must stay
			os.MkdirAll(filepath.Join(r.TmpDir(), "batch-1"), 0o755)
			idx := filepath.Join(r.Dir, "revisions", a.ID+".idx")
			want := repo.ErrCorruptIndex
			switch what {
			case "corrupt index":
				corrupt(t, idx)
			case "missing index":
				os.Remove(idx)
			case "corrupt metadata":
				os.WriteFile(filepath.Join(r.Dir, "revisions", a.ID+".rev"), []byte(`{"format":1,"id":"x"}`), 0o644)
				want = repo.ErrCorruptMeta
			}
			before := snapshot(t, r.Dir)
			_, err := purge(t, r, upkeep.PurgeOptions{})
			if !errors.Is(err, upkeep.ErrPurgeUnsafe) || !errors.Is(err, want) {
				t.Fatalf("error %v", err)
			}
			sameFiles(t, before, snapshot(t, r.Dir))
		})
	}
}

func TestPurgeBusy(t *testing.T) {
	r := newRepo(t)
	storeAt(t, r, fullStream(t, image(1, 1), ""), time.Time{})
	for _, name := range []string{repo.LockStore, repo.LockChunks} {
		t.Run(name, func(t *testing.T) {
			l, err := r.TryLock(name, name == repo.LockChunks) // a store, or a restore
			if err != nil {
				t.Fatal(err)
			}
			before := snapshot(t, r.Dir)
			os.MkdirAll(filepath.Join(r.TmpDir(), "batch-live"), 0o755) // a running store's
			_, err = purge(t, r, upkeep.PurgeOptions{})
			if !errors.Is(err, repo.ErrBusy) {
				t.Fatalf("error %v", err)
			}
			if _, err := os.Stat(filepath.Join(r.TmpDir(), "batch-live")); err != nil {
				t.Fatal("purge touched a running store's files")
			}
			os.Remove(filepath.Join(r.TmpDir(), "batch-live"))
			sameFiles(t, before, snapshot(t, r.Dir))
			// --wait: the lock is released meanwhile.
			go func() { time.Sleep(200 * time.Millisecond); l.Unlock() }()
			if _, err := purge(t, r, upkeep.PurgeOptions{Wait: 10 * time.Second}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestStoreAndPurgeConcurrently runs backy-store and purge (and forget, to
// make garbage) against each other for many rounds, then proves every
// committed revision still restores bit-exactly and verifies clean.
func TestStoreAndPurgeConcurrently(t *testing.T) {
	const rounds = 30
	r := newRepo(t)
	images := make([][]byte, rounds)
	streams := make([][]byte, rounds)
	for i := range images {
		// Neighbouring rounds share chunks, so purge must keep what a
		// concurrent store reuses.
		images[i] = image(3, uint64(i), i%3)
		streams[i] = fullStream(t, images[i], "")
	}
	var (
		mu        sync.Mutex
		committed = map[string][]byte{}
		busy      = map[string]int{}
		wg        sync.WaitGroup
		storesOK  = make(chan struct{})
	)
	wg.Add(2)
	go func() {
		defer wg.Done()
		defer close(storesOK)
		for i := 0; i < rounds; {
			rev, err := store.Store(context.Background(), r, bytes.NewReader(streams[i]), store.Options{})
			if errors.Is(err, repo.ErrBusy) {
				mu.Lock()
				busy["store"]++
				mu.Unlock()
				time.Sleep(time.Millisecond)
				continue
			}
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			committed[rev.ID] = images[i]
			mu.Unlock()
			if i%2 == 1 { // forget every other one: garbage for purge
				if _, err := upkeep.Forget(r, rev.ID, true); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				delete(committed, rev.ID)
				mu.Unlock()
			}
			i++
		}
	}()
	purged := 0
	go func() {
		defer wg.Done()
		for {
			select {
			case <-storesOK:
				return
			default:
			}
			res, err := upkeep.Purge(context.Background(), r, upkeep.PurgeOptions{})
			if errors.Is(err, repo.ErrBusy) {
				mu.Lock()
				busy["purge"]++
				mu.Unlock()
				time.Sleep(time.Millisecond)
				continue
			}
			if err != nil {
				t.Error(err)
				return
			}
			purged += res.Removed
		}
	}()
	wg.Wait()
	if t.Failed() {
		return
	}
	if _, err := purge(t, r, upkeep.PurgeOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d revisions kept, %d chunks purged on the way, busy: %v", len(committed), purged, busy)
	for id, want := range committed {
		if got := restored(t, r, id); !bytes.Equal(got, want) {
			t.Fatalf("revision %s restores differently", id)
		}
	}
	if _, _, err := verify(t, r, upkeep.Selection{All: true}, 0); err != nil {
		t.Fatal(err)
	}
	if revs, _ := r.Revisions(); len(revs) != len(committed) {
		t.Fatalf("%d revisions, want %d", len(revs), len(committed))
	}
	if purged == 0 {
		t.Error("purge never removed anything: the test did not race")
	}
}
