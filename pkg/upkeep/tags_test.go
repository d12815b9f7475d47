package upkeep_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/backy/backy/pkg/repo"
	"github.com/backy/backy/pkg/schedule"
	"github.com/backy/backy/pkg/upkeep"
)

func TestTags(t *testing.T) {
	r := newRepo(t)
	old := storeAt(t, r, fullStream(t, image(1, 1), ""), time.Time{}, "daily")
	cur := storeAt(t, r, fullStream(t, image(1, 2), ""), time.Time{}, "daily", "weekly")
	steps := []struct {
		spec, action string
		tags         []string
		want         []string
	}{
		{"latest", upkeep.TagAdd, []string{"monthly", "daily"}, []string{"daily", "weekly", "monthly"}},
		{"", upkeep.TagRemove, []string{"weekly", "nope"}, []string{"daily", "monthly"}},
		{cur.ID[:6], upkeep.TagSet, []string{"keep", "x", "keep"}, []string{"keep", "x"}},
		{"", upkeep.TagRemove, []string{"x"}, []string{"keep"}},
		{"0", upkeep.TagRemove, []string{"keep"}, []string{}}, // the newest stays, untagged
	}
	for _, s := range steps {
		res, err := upkeep.Tags(r, s.spec, s.action, s.tags)
		if err != nil {
			t.Fatalf("%s %v: %v", s.action, s.tags, err)
		}
		if res.Removed || !slices.Equal(load(t, r, cur.ID).Tags, s.want) {
			t.Fatalf("%s %v: tags %v removed %v, want %v", s.action, s.tags, load(t, r, cur.ID).Tags, res.Removed, s.want)
		}
	}
	// An older revision losing its last tag is removed.
	res, err := upkeep.Tags(r, "daily", upkeep.TagRemove, []string{"daily"})
	if err != nil || !res.Removed || res.Revision.ID != old.ID {
		t.Fatalf("%v %+v", err, res)
	}
	if _, err := r.LoadRevision(old.ID); !errors.Is(err, repo.ErrNoRevision) {
		t.Fatalf("old revision still there: %v", err)
	}
}

func TestTagsRefusesBadTags(t *testing.T) {
	r := newRepo(t)
	storeAt(t, r, fullStream(t, image(1, 1), ""), time.Time{})
	before := snapshot(t, r.Dir)
	for _, tag := range []string{"0", "", "a b", "a,b"} {
		if _, err := upkeep.Tags(r, "", upkeep.TagAdd, []string{tag}); !errors.Is(err, schedule.ErrBadTag) {
			t.Errorf("tag %q: error %v", tag, err)
		}
	}
	sameFiles(t, before, snapshot(t, r.Dir))
}

func TestForget(t *testing.T) {
	r := newRepo(t)
	a := storeAt(t, r, fullStream(t, image(1, 1), ""), time.Time{})
	b := storeAt(t, r, fullStream(t, image(1, 2), ""), time.Time{})
	before := snapshot(t, r.Dir)
	if _, err := upkeep.Forget(r, "latest", false); !errors.Is(err, upkeep.ErrNewest) {
		t.Fatalf("error %v", err)
	}
	sameFiles(t, before, snapshot(t, r.Dir))
	if rev, err := upkeep.Forget(r, a.ID, false); err != nil || rev.ID != a.ID {
		t.Fatalf("%v %v", err, rev)
	}
	if rev, err := upkeep.Forget(r, "latest", true); err != nil || rev.ID != b.ID {
		t.Fatalf("%v %v", err, rev)
	}
	if revs, _ := r.Revisions(); len(revs) != 0 {
		t.Fatalf("%d revisions left", len(revs))
	}
}

func TestAmbiguousPrefix(t *testing.T) {
	r := newRepo(t)
	a := storeAt(t, r, fullStream(t, image(1, 1), ""), time.Time{})
	cloneAs(t, r, a.ID, "qqqqaaaaaaaaaaaa", day(20))
	cloneAs(t, r, a.ID, "qqqqbbbbbbbbbbbb", day(21))
	before := snapshot(t, r.Dir)
	const msg = `repo: ambiguous revision spec "qqqq" matches qqqqaaaaaaaaaaaa, qqqqbbbbbbbbbbbb`
	if _, err := upkeep.Forget(r, "qqqq", false); !errors.Is(err, repo.ErrAmbiguous) || err.Error() != msg {
		t.Fatalf("forget: %v", err)
	}
	if _, err := upkeep.Tags(r, "qqqq", upkeep.TagAdd, []string{"x"}); !errors.Is(err, repo.ErrAmbiguous) {
		t.Fatalf("tags: %v", err)
	}
	if _, _, err := verify(t, r, upkeep.Selection{Spec: "qqqq"}, 0); !errors.Is(err, repo.ErrAmbiguous) {
		t.Fatalf("verify: %v", err)
	}
	sameFiles(t, before, snapshot(t, r.Dir))
}

func TestParseSchedule(t *testing.T) {
	s, err := upkeep.ParseSchedule("weekly=7d:5, daily=1d:9")
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Rules(); len(got) != 2 || got[0].String() != "daily=1d keep 9" || got[1].String() != "weekly=7d keep 5" {
		t.Errorf("rules %v", got)
	}
	for in, want := range map[string]error{
		"daily":         upkeep.ErrBadSchedule,
		"daily=1d":      upkeep.ErrBadSchedule,
		"daily=1d:x":    upkeep.ErrBadSchedule,
		"daily=1x:3":    schedule.ErrBadDuration,
		"daily=1d:0":    schedule.ErrBadRule,
		"0=1d:3":        schedule.ErrBadTag,
		"d=1d:1,d=2d:1": schedule.ErrBadRule,
	} {
		if _, err := upkeep.ParseSchedule(in); !errors.Is(err, want) {
			t.Errorf("%q: error %v, want %v", in, err, want)
		}
	}
}

func TestExpire(t *testing.T) {
	r := newRepo(t)
	s, err := upkeep.ParseSchedule("daily=1d:2,weekly=7d:1")
	if err != nil {
		t.Fatal(err)
	}
	// Ten daily revisions; the first and eighth also weekly; one manual.
	var ids []string
	for d := 1; d <= 10; d++ {
		tags := []string{"daily"}
		if d == 1 || d == 8 {
			tags = append(tags, "weekly")
		}
		if d == 3 {
			tags = append(tags, "manual")
		}
		ids = append(ids, storeAt(t, r, fullStream(t, image(1, uint64(d)), ""), day(d), tags...).ID)
	}
	now := func() time.Time { return day(10).Add(time.Hour) }
	log := newLogger()
	before := snapshot(t, r.Dir)
	changes, err := upkeep.Expire(r, s, true, upkeep.Options{Now: now, Log: log.log})
	if err != nil || len(changes) == 0 {
		t.Fatalf("dry run: %v %v", err, changes)
	}
	sameFiles(t, before, snapshot(t, r.Dir))
	if _, err := upkeep.Expire(r, s, false, upkeep.Options{Now: now, Log: log.log}); err != nil {
		t.Fatal(err)
	}
	revs, _ := r.Revisions()
	var left []string
	for _, rev := range revs {
		left = append(left, rev.ID)
	}
	// Kept: day 3 (manual tag), day 8 (weekly), days 9 and 10 (the last two daily).
	want := []string{ids[2], ids[7], ids[8], ids[9]}
	if !slices.Equal(left, want) {
		t.Fatalf("left %v, want %v\n%s", left, want, log)
	}
	if tags := load(t, r, ids[2]).Tags; !slices.Equal(tags, []string{"manual"}) {
		t.Errorf("day 3 tags %v", tags)
	}
}

func TestExpireNeverRemovesTheNewest(t *testing.T) {
	r := newRepo(t)
	s, _ := upkeep.ParseSchedule("daily=1d:1")
	a := storeAt(t, r, fullStream(t, image(1, 1), ""), day(1), "other")
	changes, err := upkeep.Expire(r, s, false, upkeep.Options{Now: func() time.Time { return day(30) }})
	if err != nil || len(changes) != 0 {
		t.Fatalf("%v %v", err, changes)
	}
	b := storeAt(t, r, fullStream(t, image(1, 2), ""), day(2))
	if _, err := upkeep.Expire(r, s, false, upkeep.Options{Now: func() time.Time { return day(30) }}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.LoadRevision(a.ID); err != nil {
		t.Errorf("a revision with a manual tag went: %v", err)
	}
	if _, err := r.LoadRevision(b.ID); err != nil {
		t.Errorf("the newest (untagged) revision went: %v", err)
	}
}
