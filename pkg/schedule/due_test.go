package schedule

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// testSpread puts the standard schedule's slots at 03:17 UTC: daily every
// day, weekly on days since the epoch divisible by 7 (Thursdays), monthly on
// days divisible by 30. 2025-03-13 is both.
const testSpread = 3*time.Hour + 17*time.Minute

func at(month time.Month, dayOfMonth, hour, minute, sec int) time.Time {
	return time.Date(2025, month, dayOfMonth, hour, minute, sec, 0, time.UTC)
}

func TestNextDue(t *testing.T) {
	s := standard(t)
	slotRun := func(d int) time.Time { return at(3, d, 3, 17, 5) } // a run just after the 03:17 slot
	for _, tc := range []struct {
		name     string
		now      time.Time
		last     map[string]time.Time
		wantAt   time.Time // zero: now
		wantTags []string
	}{{
		name:     "never ran: everything at once",
		now:      at(3, 10, 12, 0, 0),
		wantTags: []string{"daily", "weekly", "monthly"},
	}, {
		name:     "zero time means never",
		now:      at(3, 10, 12, 0, 0),
		last:     map[string]time.Time{"daily": {}, "weekly": slotRun(13), "monthly": slotRun(13)},
		wantTags: []string{"daily"},
	}, {
		name:     "on time: next daily slot",
		now:      at(3, 13, 10, 0, 0),
		last:     map[string]time.Time{"daily": slotRun(13), "weekly": slotRun(13), "monthly": slotRun(13)},
		wantAt:   at(3, 14, 3, 17, 0),
		wantTags: []string{"daily"},
	}, {
		name:     "weekly rides on the daily run",
		now:      at(3, 19, 12, 0, 0),
		last:     map[string]time.Time{"daily": slotRun(19), "weekly": slotRun(13), "monthly": slotRun(13)},
		wantAt:   at(3, 20, 3, 17, 0),
		wantTags: []string{"daily", "weekly"},
	}, {
		name:     "downtime: missed daily is due now",
		now:      at(3, 16, 9, 0, 0),
		last:     map[string]time.Time{"daily": slotRun(14), "weekly": slotRun(13), "monthly": slotRun(13)},
		wantTags: []string{"daily"},
	}, {
		name:     "downtime over a weekly slot: both now",
		now:      at(3, 20, 9, 0, 0),
		last:     map[string]time.Time{"daily": slotRun(19), "weekly": slotRun(13), "monthly": slotRun(13)},
		wantTags: []string{"daily", "weekly"},
	}, {
		name:     "catch-up takes a slot within grace along",
		now:      at(3, 20, 3, 14, 0),
		last:     map[string]time.Time{"daily": slotRun(17), "weekly": slotRun(13), "monthly": slotRun(13)},
		wantTags: []string{"daily", "weekly"},
	}, {
		name:     "catch-up leaves a slot beyond grace",
		now:      at(3, 20, 3, 11, 0),
		last:     map[string]time.Time{"daily": slotRun(17), "weekly": slotRun(13), "monthly": slotRun(13)},
		wantTags: []string{"daily"},
	}, {
		name:     "a run within grace before the slot counts for it",
		now:      at(3, 20, 3, 20, 0),
		last:     map[string]time.Time{"daily": at(3, 20, 3, 14, 0), "weekly": at(3, 20, 3, 14, 0), "monthly": slotRun(13)},
		wantAt:   at(3, 21, 3, 17, 0),
		wantTags: []string{"daily"},
	}, {
		name:     "a late run keeps the slot",
		now:      at(3, 14, 10, 0, 0),
		last:     map[string]time.Time{"daily": at(3, 14, 9, 30, 0), "weekly": slotRun(13), "monthly": slotRun(13)},
		wantAt:   at(3, 15, 3, 17, 0),
		wantTags: []string{"daily"},
	}, {
		name:     "a manual run between slots does not move the slot",
		now:      at(3, 14, 20, 1, 0),
		last:     map[string]time.Time{"daily": at(3, 14, 20, 0, 0), "weekly": slotRun(13), "monthly": slotRun(13)},
		wantAt:   at(3, 15, 3, 17, 0),
		wantTags: []string{"daily"},
	}, {
		name:     "revision from the future: slot after it",
		now:      at(3, 14, 10, 0, 0),
		last:     map[string]time.Time{"daily": at(3, 15, 5, 0, 0), "weekly": slotRun(13), "monthly": slotRun(13)},
		wantAt:   at(3, 16, 3, 17, 0),
		wantTags: []string{"daily"},
	}, {
		name:     "monthly and weekly fall on the same day",
		now:      at(4, 11, 12, 0, 0),
		last:     map[string]time.Time{"daily": at(4, 11, 3, 17, 5), "weekly": at(4, 10, 3, 17, 5), "monthly": slotRun(13)},
		wantAt:   at(4, 12, 3, 17, 0),
		wantTags: []string{"daily", "monthly"},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			p := s.NextDue(tc.now, tc.last, testSpread)
			want := tc.wantAt
			if want.IsZero() {
				want = tc.now
			}
			if !p.At.Equal(want) || !slices.Equal(p.Tags, tc.wantTags) {
				t.Errorf("NextDue() = %v %v, want %v %v", p.At, p.Tags, want, tc.wantTags)
			}
			if len(p.ByTag) != s.Len() {
				t.Fatalf("ByTag has %d tags, want %d", len(p.ByTag), s.Len())
			}
			for _, td := range p.ByTag {
				if td.Due.Before(tc.now) || td.Overdue(tc.now) != (td.Due.Equal(tc.now) && !td.Slot.Equal(tc.now)) {
					t.Errorf("tag %s: Due %v, Slot %v, Overdue %v at %v", td.Tag, td.Due, td.Slot, td.Overdue(tc.now), tc.now)
				}
			}
		})
	}
}

func TestNextDueEmptySchedule(t *testing.T) {
	p := Schedule{}.NextDue(at(3, 1, 0, 0, 0), nil, 0)
	if !p.At.IsZero() || p.Tags != nil || p.ByTag != nil {
		t.Errorf("empty schedule planned %+v", p)
	}
}

func TestPlanHold(t *testing.T) {
	s := standard(t)
	now := at(3, 20, 3, 10, 0)
	last := map[string]time.Time{"daily": at(3, 17, 3, 17, 5), "weekly": at(3, 13, 3, 17, 5), "monthly": at(3, 13, 3, 17, 5)}
	p := s.NextDue(now, last, testSpread)
	if !slices.Equal(p.Tags, []string{"daily"}) {
		t.Fatalf("Tags = %v", p.Tags)
	}
	if q := p.Hold(now.Add(-time.Hour)); !q.At.Equal(p.At) || !slices.Equal(q.Tags, p.Tags) {
		t.Errorf("Hold(earlier) changed the plan to %v %v", q.At, q.Tags)
	}
	// Backing off until 03:14 brings the 03:17 weekly slot within grace.
	q := p.Hold(now.Add(4 * time.Minute))
	if !q.At.Equal(now.Add(4*time.Minute)) || !slices.Equal(q.Tags, []string{"daily", "weekly"}) {
		t.Errorf("Hold(+4m) = %v %v", q.At, q.Tags)
	}
	if !slices.Equal(p.Tags, []string{"daily"}) {
		t.Errorf("Hold changed the original plan's tags to %v", p.Tags)
	}
	if z := (Plan{}).Hold(now); !z.At.IsZero() {
		t.Errorf("Hold on an empty plan = %v", z.At)
	}
}

func TestSlotAfter(t *testing.T) {
	for _, tc := range []struct {
		t        time.Time
		interval time.Duration
		spread   time.Duration
		want     time.Time
	}{
		{at(3, 5, 12, 0, 0), day, testSpread, at(3, 6, 3, 17, 0)},
		{at(3, 6, 3, 16, 59), day, testSpread, at(3, 6, 3, 17, 0)},
		{at(3, 6, 3, 17, 0), day, testSpread, at(3, 7, 3, 17, 0)},
		{at(3, 6, 3, 17, 0), day, testSpread + 5*day, at(3, 7, 3, 17, 0)},
		{at(3, 6, 3, 17, 0), day, testSpread - day, at(3, 7, 3, 17, 0)},
		{at(3, 6, 3, 17, 0), week, testSpread, at(3, 13, 3, 17, 0)},
		{at(3, 6, 3, 17, 0), week, testSpread + 2*day, at(3, 8, 3, 17, 0)},
		{time.Date(1969, 12, 31, 23, 0, 0, 0, time.UTC), time.Hour, 0, time.Unix(0, 0)},
		{time.Date(1969, 12, 31, 23, 0, 0, 0, time.UTC), time.Hour, -time.Minute, time.Date(1969, 12, 31, 23, 59, 0, 0, time.UTC)},
	} {
		if got := slotAfter(tc.t, tc.interval, tc.spread); !got.Equal(tc.want) {
			t.Errorf("slotAfter(%v, %v, %v) = %v, want %v", tc.t, tc.interval, tc.spread, got, tc.want)
		}
	}
	// Absurd times must not overflow into the past.
	far := time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)
	if got := slotAfter(far, day, 0); got.Before(time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("slotAfter(year 9999) = %v", got)
	}
	if got := slotAfter(time.Time{}, day, 0); got.After(time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("slotAfter(year 1) = %v", got)
	}
}

func TestLastByTag(t *testing.T) {
	revs := []RevisionInfo{
		{ID: "a", Time: at(3, 1, 0, 0, 0), Tags: []string{"daily", "weekly"}},
		{ID: "c", Time: at(3, 3, 0, 0, 0), Tags: []string{"daily"}},
		{ID: "b", Time: at(3, 2, 0, 0, 0), Tags: []string{"daily", "manual"}},
	}
	got := LastByTag(revs)
	want := map[string]time.Time{"daily": at(3, 3, 0, 0, 0), "weekly": at(3, 1, 0, 0, 0), "manual": at(3, 2, 0, 0, 0)}
	if len(got) != len(want) {
		t.Fatalf("LastByTag() = %v, want %v", got, want)
	}
	for tag, w := range want {
		if !got[tag].Equal(w) {
			t.Errorf("LastByTag()[%s] = %v, want %v", tag, got[tag], w)
		}
	}
}

func BenchmarkNextDue10000Jobs(b *testing.B) {
	s := standard(b)
	now := at(3, 20, 12, 0, 0)
	type job struct {
		spread time.Duration
		last   map[string]time.Time
	}
	jobs := make([]job, 10000)
	for i := range jobs {
		ago := time.Duration(i%48) * time.Hour
		jobs[i] = job{
			spread: Spread(fmt.Sprintf("vm%05d", i)),
			last:   map[string]time.Time{"daily": now.Add(-ago), "weekly": now.Add(-3 * ago), "monthly": now.Add(-10 * ago)},
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		for _, j := range jobs {
			s.NextDue(now, j.last, j.spread)
		}
	}
}
