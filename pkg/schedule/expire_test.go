package schedule

import (
	"reflect"
	"testing"
	"time"
)

func TestExpire(t *testing.T) {
	s := standard(t)
	now := at(6, 1, 12, 0, 0)
	daysAgo := func(d int) time.Time { return now.Add(-time.Duration(d) * day) }
	daily := func(id string, d int, extra ...string) RevisionInfo {
		return RevisionInfo{ID: id, Time: daysAgo(d), Tags: append([]string{"daily"}, extra...)}
	}
	bad := func(r RevisionInfo) RevisionInfo { r.Distrusted = true; return r }
	for _, tc := range []struct {
		name string
		revs []RevisionInfo
		want []Change
	}{{
		name: "nothing to expire",
		revs: []RevisionInfo{daily("a", 2), daily("b", 1), daily("c", 0)},
	}, {
		name: "empty repository",
	}, {
		name: "beyond keep and window: removed",
		revs: []RevisionInfo{daily("old", 12), daily("d9", 9), daily("d8", 8), daily("d7", 7), daily("d6", 6), daily("d5", 5),
			daily("d4", 4), daily("d3", 3), daily("d2", 2), daily("d1", 1), daily("d0", 0)},
		want: []Change{{ID: "old", Untag: []string{"daily"}, Remove: true}},
	}, {
		name: "beyond keep but inside keep*interval: kept",
		// Twelve dailies within nine days: more than keep, but all young.
		revs: []RevisionInfo{daily("x1", 8), daily("x2", 8), daily("x3", 8), daily("d7", 7), daily("d6", 6), daily("d5", 5),
			daily("d4", 4), daily("d3", 3), daily("d2", 2), daily("d1", 1), daily("d0", 0), daily("now", 0)},
	}, {
		name: "old but fewer than keep: kept",
		revs: []RevisionInfo{daily("a", 400), daily("b", 300), daily("c", 200)},
	}, {
		name: "exactly at the window edge: kept",
		revs: []RevisionInfo{daily("edge", 9), daily("d8", 8), daily("d7", 7), daily("d6", 6), daily("d5", 5),
			daily("d4", 4), daily("d3", 3), daily("d2", 2), daily("d1", 1), daily("d0", 0)},
	}, {
		name: "loses daily, keeps weekly",
		revs: []RevisionInfo{daily("w", 20, "weekly"), daily("d9", 9), daily("d8", 8), daily("d7", 7), daily("d6", 6), daily("d5", 5),
			daily("d4", 4), daily("d3", 3), daily("d2", 2), daily("d1", 1), daily("d0", 0)},
		want: []Change{{ID: "w", Untag: []string{"daily"}, Tags: []string{"weekly"}}},
	}, {
		name: "manual tags are never taken",
		revs: []RevisionInfo{daily("m", 20, "before-upgrade"), daily("d9", 9), daily("d8", 8), daily("d7", 7), daily("d6", 6), daily("d5", 5),
			daily("d4", 4), daily("d3", 3), daily("d2", 2), daily("d1", 1), daily("d0", 0)},
		want: []Change{{ID: "m", Untag: []string{"daily"}, Tags: []string{"before-upgrade"}}},
	}, {
		name: "revision without tags is removed",
		revs: []RevisionInfo{{ID: "bare", Time: daysAgo(1)}, daily("d0", 0)},
		want: []Change{{ID: "bare", Remove: true}},
	}, {
		name: "newest revision is never removed",
		revs: []RevisionInfo{daily("d1", 1), {ID: "bare", Time: daysAgo(0)}},
	}, {
		name: "several tags expire on one revision",
		revs: []RevisionInfo{
			{ID: "a", Time: daysAgo(300), Tags: []string{"monthly", "weekly", "daily"}},
			{ID: "b", Time: daysAgo(200), Tags: []string{"monthly", "weekly"}},
			{ID: "c", Time: daysAgo(150), Tags: []string{"monthly"}},
			{ID: "d", Time: daysAgo(120), Tags: []string{"monthly"}},
			{ID: "e", Time: daysAgo(100), Tags: []string{"monthly"}},
			{ID: "e2", Time: daysAgo(90), Tags: []string{"monthly"}},
			{ID: "f", Time: daysAgo(50), Tags: []string{"weekly"}},
			{ID: "f2", Time: daysAgo(45), Tags: []string{"weekly"}},
			{ID: "g", Time: daysAgo(40), Tags: []string{"weekly"}},
			{ID: "h", Time: daysAgo(1), Tags: []string{"weekly"}},
			{ID: "i", Time: daysAgo(0), Tags: []string{"daily"}},
		},
		want: []Change{
			{ID: "a", Untag: []string{"weekly", "monthly"}, Tags: []string{"daily"}},
			{ID: "b", Untag: []string{"monthly"}, Tags: []string{"weekly"}},
		},
	}, {
		name: "equal times are ordered by id",
		revs: []RevisionInfo{
			{ID: "b", Time: daysAgo(5), Tags: nil},
			{ID: "a", Time: daysAgo(5), Tags: nil},
		},
		want: []Change{{ID: "a", Remove: true}},
	}, {
		name: "duplicate tags count once",
		revs: []RevisionInfo{{ID: "dup", Time: daysAgo(40), Tags: []string{"daily", "daily", "x", "x"}}, daily("d0", 0)},
	}, {
		name: "duplicate expired tags are reported once",
		revs: []RevisionInfo{
			{ID: "dup", Time: daysAgo(40), Tags: []string{"daily", "daily", "x", "x"}},
			daily("d9", 9), daily("d8", 8), daily("d7", 7), daily("d6", 6), daily("d5", 5),
			daily("d4", 4), daily("d3", 3), daily("d2", 2), daily("d1", 1), daily("d0", 0)},
		want: []Change{{ID: "dup", Untag: []string{"daily"}, Tags: []string{"x"}}},
	}, {
		// A disk that went bad distrusted the three newest: they do not
		// count for keep, or the schedule would take away three of the
		// nine revisions that restore. Older than the ninth trusted
		// one, a distrusted revision loses the tag as any would.
		name: "distrusted revisions count for nothing",
		revs: []RevisionInfo{
			bad(daily("x1", 40)), daily("t0", 31),
			daily("t1", 30), daily("t2", 29), daily("t3", 28), daily("t4", 27), daily("t5", 26),
			daily("t6", 25), daily("t7", 24), daily("t8", 23), daily("t9", 22),
			bad(daily("x2", 12)), bad(daily("x3", 11)), bad(daily("x4", 10)),
		},
		want: []Change{
			{ID: "x1", Untag: []string{"daily"}, Remove: true},
			{ID: "t0", Untag: []string{"daily"}, Remove: true},
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			got := Expire(tc.revs, s, now)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Expire() =\n%+v\nwant\n%+v", got, tc.want)
			}
		})
	}
}

func TestExpireHugeKeep(t *testing.T) {
	// Keep*Interval beyond time.Duration: nothing is old enough to expire.
	s, err := New(Rule{Tag: "forever", Interval: MaxInterval, Keep: 1 << 40})
	if err != nil {
		t.Fatal(err)
	}
	revs := []RevisionInfo{
		{ID: "a", Time: time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC), Tags: []string{"forever"}},
		{ID: "b", Time: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), Tags: []string{"forever"}},
	}
	if got := Expire(revs, s, time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)); got != nil {
		t.Errorf("Expire() = %+v", got)
	}
}

func TestExpireEmptySchedule(t *testing.T) {
	revs := []RevisionInfo{{ID: "a", Time: at(1, 1, 0, 0, 0), Tags: []string{"daily"}}, {ID: "b", Time: at(1, 2, 0, 0, 0)}}
	if got := Expire(revs, Schedule{}, at(6, 1, 0, 0, 0)); got != nil {
		t.Errorf("Expire() with an empty schedule = %+v", got)
	}
}
