package schedule

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// TestSimulateDaemon drives the daemon's loop (plan, sleep, run, expire)
// with a fake clock through 400 days, a three-day outage and a morning of
// failing runs, and checks what an operator would look at: run times, tags,
// the retry series and how many revisions are left.
func TestSimulateDaemon(t *testing.T) {
	s := standard(t)
	start := at(1, 1, 0, 0, 0)
	end := start.Add(400 * day)
	downFrom, downTo := start.Add(100*day+20*time.Hour), start.Add(103*day+9*time.Hour)
	failFrom, failTo := start.Add(200*day+3*time.Hour), start.Add(200*day+13*time.Hour)

	var (
		now      = start
		last     = map[string]time.Time{}
		retry    Retry
		revs     []RevisionInfo
		runs     []RevisionInfo // every successful run, never expired
		attempts []time.Time
	)
	for now.Before(end) {
		if !now.Before(downFrom) && now.Before(downTo) {
			now = downTo // the daemon is down; it restarts at downTo
			continue
		}
		p := s.NextDue(now, last, testSpread).Hold(retry.NotBefore(DefaultBackoff))
		if p.At.After(now) {
			now = p.At
			continue
		}
		if !now.Before(failFrom) && now.Before(failTo) {
			attempts = append(attempts, now)
			now = now.Add(time.Minute)
			retry = retry.Failed(now)
			continue
		}
		rev := RevisionInfo{ID: fmt.Sprintf("r%04d", len(runs)), Time: now, Tags: p.Tags}
		revs, runs = append(revs, rev), append(runs, rev)
		for _, tag := range p.Tags {
			last[tag] = now
		}
		retry = retry.Succeeded()
		revs = applyExpiry(t, revs, Expire(revs, s, now))
		now = now.Add(10 * time.Minute)
	}

	slot := func(t time.Time) bool { return t.Sub(t.Truncate(day)) == testSpread }
	var catchUps []RevisionInfo
	for i, r := range runs {
		if !slot(r.Time) {
			catchUps = append(catchUps, r)
			continue
		}
		if i > 0 && r.Time.Sub(runs[i-1].Time) > day {
			t.Errorf("run %s at %v follows %v by more than a day", r.ID, r.Time, runs[i-1].Time)
		}
		days := int64(r.Time.Sub(epoch) / day)
		if weekly := slices.Contains(r.Tags, "weekly"); weekly != (days%7 == 0) {
			t.Errorf("run %s at %v (day %d) has tags %v", r.ID, r.Time, days, r.Tags)
		}
	}
	// Three catch-ups: the first run, right after the outage, and the first
	// success after the failures. The outage spans a monthly slot, so the
	// monthly is caught up too.
	if len(catchUps) != 3 {
		t.Fatalf("catch-up runs: %+v", catchUps)
	}
	if c := catchUps[0]; !c.Time.Equal(start) || !slices.Equal(c.Tags, []string{"daily", "weekly", "monthly"}) {
		t.Errorf("first run: %+v, want every tag at %v", c, start)
	}
	if c := catchUps[1]; !c.Time.Equal(downTo) || !slices.Equal(c.Tags, []string{"daily", "monthly"}) {
		t.Errorf("after the outage: %+v, want daily and monthly at %v", c, downTo)
	}
	if c := catchUps[2]; c.Time.Before(failTo) || c.Time.After(failTo.Add(6*time.Hour)) || !slices.Contains(c.Tags, "daily") {
		t.Errorf("after the failures: %+v", c)
	}

	// The failing morning retries after 2, 4, 8, ... minutes (plus the
	// minute each failed run takes).
	for i := 1; i < len(attempts); i++ {
		gap := attempts[i].Sub(attempts[i-1])
		if want := time.Minute + DefaultBackoff.Delay(i); gap != want {
			t.Errorf("retry %d came %v after the previous one, want %v", i, gap, want)
		}
	}
	if len(attempts) != 9 {
		t.Errorf("%d failed attempts, want 9: %v", len(attempts), attempts)
	}

	count := map[string]int{}
	for _, r := range revs {
		for _, tag := range r.Tags {
			count[tag]++
		}
	}
	for _, r := range s.Rules() {
		if n := count[r.Tag]; n < r.Keep || n > r.Keep+1 {
			t.Errorf("%d revisions tagged %s left, want %d or %d", n, r.Tag, r.Keep, r.Keep+1)
		}
	}
	if len(revs) > 9+1+5+1+4+1 {
		t.Errorf("%d revisions left", len(revs))
	}
}

// applyExpiry carries out changes the way backy-store expire would.
func applyExpiry(t *testing.T, revs []RevisionInfo, changes []Change) []RevisionInfo {
	t.Helper()
	byID := map[string]Change{}
	for _, c := range changes {
		byID[c.ID] = c
	}
	var kept []RevisionInfo
	for _, r := range revs {
		c, ok := byID[r.ID]
		switch {
		case !ok:
			kept = append(kept, r)
		case !c.Remove:
			r.Tags = c.Tags
			kept = append(kept, r)
		}
	}
	if len(kept) == 0 {
		t.Fatal("expiry removed every revision")
	}
	return kept
}
