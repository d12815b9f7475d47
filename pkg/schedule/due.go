package schedule

import (
	"time"
)

// epoch anchors every slot, so slots do not depend on when the daemon
// started and are the same on every server.
var epoch = time.Unix(0, 0)

// TagDue is the state of one tag of a job.
type TagDue struct {
	Tag string
	// Last is the time of the newest revision with this tag; zero if none.
	Last time.Time
	// Slot is the slot the tag waits for: the first one more than the grace
	// period after Last. Zero if the tag never ran.
	Slot time.Time
	// Due is when the tag should run: Slot, or now if Slot has passed or the
	// tag never ran.
	Due time.Time

	grace time.Duration
}

// Overdue reports whether the tag missed its slot or never ran, so it is
// being caught up rather than run on time.
func (t TagDue) Overdue(now time.Time) bool {
	return t.Slot.IsZero() || t.Slot.Before(now)
}

// Plan is what a job should do next.
type Plan struct {
	// At is when the next run should start; it equals now when a tag is due
	// already. Zero for an empty schedule, which never runs.
	At time.Time
	// Tags are the tags the run at At takes, in schedule order.
	Tags []string
	// ByTag has every tag of the schedule, in schedule order.
	ByTag []TagDue
}

// NextDue plans a job's next run at time now, given the newest revision time
// of each tag (tags absent or zero never ran) and the job's spread.
func (s Schedule) NextDue(now time.Time, last map[string]time.Time, spread time.Duration) Plan {
	if len(s.rules) == 0 {
		return Plan{}
	}
	p := Plan{ByTag: make([]TagDue, len(s.rules))}
	for i, r := range s.rules {
		t := TagDue{Tag: r.Tag, Last: last[r.Tag], Due: now, grace: r.grace()}
		if !t.Last.IsZero() {
			t.Slot = slotAfter(t.Last.Add(t.grace), r.Interval, spread)
			if t.Slot.After(now) {
				t.Due = t.Slot
			}
		}
		if i == 0 || t.Due.Before(p.At) {
			p.At = t.Due
		}
		p.ByTag[i] = t
	}
	p.Tags = p.tagsAt(p.At)
	return p
}

// Hold returns the plan moved to until, if that is later than At, with the
// tags due by then; the daemon holds a job back this way while it backs off
// after failures.
func (p Plan) Hold(until time.Time) Plan {
	if p.At.IsZero() || !until.After(p.At) {
		return p
	}
	p.At = until
	p.Tags = p.tagsAt(until)
	return p
}

// tagsAt lists the tags a run at time at takes: those due by then, and those
// whose slot is within their grace period after it.
func (p Plan) tagsAt(at time.Time) []string {
	tags := make([]string, 0, len(p.ByTag))
	for _, t := range p.ByTag {
		if !t.Due.After(at.Add(t.grace)) {
			tags = append(tags, t.Tag)
		}
	}
	return tags
}

// slotAfter returns the first slot of a tag with the given interval and
// spread that is strictly after t. Times are clamped to about ±146 years
// around the epoch so that the arithmetic cannot overflow; no backup is
// that old.
func slotAfter(t time.Time, interval, spread time.Duration) time.Time {
	const limit = time.Duration(1 << 62)
	d := max(-limit, min(limit, t.Sub(epoch)))
	offset := spread % interval
	if offset < 0 {
		offset += interval
	}
	k := floorDiv(d-offset, interval) + 1
	return epoch.Add(offset + time.Duration(k)*interval)
}

func floorDiv(a, b time.Duration) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return int64(q)
}

// LastByTag returns the newest revision time for each tag in revs; it is the
// last argument NextDue needs.
func LastByTag(revs []RevisionInfo) map[string]time.Time {
	last := make(map[string]time.Time)
	for _, r := range revs {
		for _, tag := range r.Tags {
			if cur, ok := last[tag]; !ok || r.Time.After(cur) {
				last[tag] = r.Time
			}
		}
	}
	return last
}
