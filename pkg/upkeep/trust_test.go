package upkeep_test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/backy/backy/pkg/extent"
	"github.com/backy/backy/pkg/repo"
	"github.com/backy/backy/pkg/store"
	"github.com/backy/backy/pkg/upkeep"
)

func day(d int) time.Time { return time.Date(2025, 3, d, 10, 0, 0, 0, time.Local) }

func trusts(t *testing.T, r *repo.Repo) map[string]string {
	t.Helper()
	revs, err := r.Revisions()
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, rev := range revs {
		m[rev.ID] = rev.Trust
	}
	return m
}

func TestDistrustSelections(t *testing.T) {
	r := newRepo(t)
	var ids []string
	for d := 1; d <= 5; d++ {
		ids = append(ids, storeAt(t, r, fullStream(t, image(1, uint64(d)), ""), day(d)).ID)
	}
	changed, err := upkeep.Distrust(r, upkeep.Selection{From: "2025-03-02", Until: "2025-03-03"})
	if err != nil || len(changed) != 2 {
		t.Fatalf("range: %v, %d changed", err, len(changed))
	}
	m := trusts(t, r)
	if m[ids[0]] != repo.Trusted || m[ids[1]] != repo.Distrusted || m[ids[2]] != repo.Distrusted || m[ids[3]] != repo.Trusted {
		t.Errorf("after range: %v", m)
	}
	// RFC 3339 bounds are exact; an open end runs to the newest.
	if changed, err := upkeep.Distrust(r, upkeep.Selection{From: day(4).Format(time.RFC3339)}); err != nil || len(changed) != 2 {
		t.Fatalf("from: %v %d", err, len(changed))
	}
	if changed, err := upkeep.Distrust(r, upkeep.Selection{Spec: "4"}); err != nil || len(changed) != 1 || changed[0].ID != ids[0] {
		t.Fatalf("spec 4: %v %v", err, changed)
	}
	if changed, err := upkeep.Distrust(r, upkeep.Selection{All: true}); err != nil || len(changed) != 0 {
		t.Fatalf("all again: %v %d", err, len(changed))
	}
}

func TestDistrustBadSelections(t *testing.T) {
	r := newRepo(t)
	for d := 1; d <= 2; d++ {
		storeAt(t, r, fullStream(t, image(1, uint64(d)), ""), day(d))
	}
	for name, c := range map[string]struct {
		sel  upkeep.Selection
		want error
		msg  string
	}{
		"no revisions in range": {upkeep.Selection{From: "2024-01-01", Until: "2024-12-31"}, upkeep.ErrNoMatch,
			"upkeep: no revision matches: none taken from 2024-01-01 until 2024-12-31"},
		"bad date":       {upkeep.Selection{From: "yesterday"}, upkeep.ErrBadDate, `upkeep: bad date "yesterday": want YYYY-MM-DD or RFC 3339 (2006-01-02T15:04:05Z)`},
		"unknown spec":   {upkeep.Selection{Spec: "nosuch"}, repo.ErrNoRevision, `repo: no such revision "nosuch"`},
		"spec and range": {upkeep.Selection{Spec: "0", From: "2025-01-01"}, upkeep.ErrSelection, "upkeep: bad revision selection: give one of a revision spec, a date range or all"},
		"n out of range": {upkeep.Selection{Spec: "7"}, repo.ErrNoRevision, `repo: no such revision "7": there are 2 revisions`},
	} {
		t.Run(name, func(t *testing.T) {
			before := snapshot(t, r.Dir)
			_, err := upkeep.Distrust(r, c.sel)
			if !errors.Is(err, c.want) || err.Error() != c.msg {
				t.Fatalf("error %q, want %q", err, c.msg)
			}
			sameFiles(t, before, snapshot(t, r.Dir))
		})
	}
}

// backy-store refuses a differential stream whose parent is distrusted:
// the source has to send a full stream.
func TestStoreRefusesDiffOnDistrustedParent(t *testing.T) {
	r := newRepo(t)
	img := image(2, 1)
	parent := storeAt(t, r, fullStream(t, img, "snap1"), time.Time{})
	var diff bytes.Buffer
	w, _ := extent.NewWriter(&diff, extent.Header{Kind: extent.Differential, Size: int64(len(img)), Base: "snap1", Snapshot: "snap2"})
	w.WriteData(10, []byte("changed"))
	w.Close()
	if _, err := upkeep.Distrust(r, upkeep.Selection{}); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, r.Dir)
	_, err := store.Store(context.Background(), r, bytes.NewReader(diff.Bytes()), store.Options{})
	if !errors.Is(err, store.ErrDistrusted) {
		t.Fatalf("error %v, want ErrDistrusted", err)
	}
	sameFiles(t, before, snapshot(t, r.Dir))
	// Once verified again, the parent serves as a base.
	if _, _, err := verify(t, r, upkeep.Selection{Spec: parent.ID}, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Store(context.Background(), r, bytes.NewReader(diff.Bytes()), store.Options{}); err != nil {
		t.Fatal(err)
	}
}

// While a revision is distrusted, backy-store re-verifies every chunk it
// would reuse, so a damaged chunk is written again instead of being
// referenced by the new revision. Without the distrust it is reused as is.
func TestStoreReverifiesChunksWhileDistrusted(t *testing.T) {
	for _, distrust := range []bool{false, true} {
		r := newRepo(t)
		img := image(3, 1)
		first := storeAt(t, r, fullStream(t, img, ""), time.Time{})
		p, _ := chunkPath(t, r, first.ID, 1)
		corrupt(t, p)
		if distrust {
			if _, err := upkeep.Distrust(r, upkeep.Selection{}); err != nil {
				t.Fatal(err)
			}
		}
		second := storeAt(t, r, fullStream(t, img, ""), time.Time{})
		_, _, err := verify(t, r, upkeep.Selection{Spec: second.ID}, 0)
		switch {
		case distrust && err != nil:
			t.Fatalf("after a store with a distrusted revision the chunk is still bad: %v", err)
		case distrust && second.Stats.ChunksNew != 1:
			t.Errorf("stats %+v: want the damaged chunk stored anew", second.Stats)
		case !distrust && !errors.Is(err, upkeep.ErrDamaged):
			t.Fatalf("control: the damaged chunk should have been reused, verify says %v", err)
		}
		if distrust && !bytes.Equal(restored(t, r, first.ID), img) {
			t.Error("the repaired chunk did not repair the first revision")
		}
	}
}
