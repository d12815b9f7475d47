package schedule

import (
	"math"
	"slices"
	"strings"
	"time"
)

// RevisionInfo is what expiry needs to know about a revision.
type RevisionInfo struct {
	ID   string
	Time time.Time
	Tags []string
	// Distrusted revisions are not counted among the Keep of a tag.
	Distrusted bool
}

// Change is what expiry does to one revision.
type Change struct {
	ID string
	// Untag lists the schedule tags the revision loses, in schedule order.
	Untag []string
	// Tags are the tags it keeps, in schedule order; empty when Remove.
	Tags []string
	// Remove is set when no tag is left: the revision is to be deleted.
	Remove bool
}

// Expire decides which revisions lose which tags under schedule s at time
// now, and which of them are left without any tag and are to be removed.
// Per tag, the newest Keep trusted revisions with that tag keep it, and so
// does every revision not older than Keep*Interval; a distrusted revision
// counts for nothing, and keeps the tag while it is newer than the Keep-th
// trusted one (damage found in the newest revisions must not cost the older
// ones that restore). Tags the schedule does not know are
// kept. A revision without tags is removed too, but the newest revision of
// the job is never removed. Revisions are ordered by Time, then ID; the
// changes come back in that order, oldest first, and only for revisions that
// change.
func Expire(revs []RevisionInfo, s Schedule, now time.Time) []Change {
	order := make([]int, len(revs))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		if c := revs[a].Time.Compare(revs[b].Time); c != 0 {
			return c
		}
		return strings.Compare(revs[a].ID, revs[b].ID)
	})

	// untag[i] holds the tags revision i loses.
	untag := make([]map[string]bool, len(revs))
	for _, r := range s.rules {
		threshold := keepSince(now, r)
		kept := 0
		for j := len(order) - 1; j >= 0; j-- {
			i := order[j]
			if !slices.Contains(revs[i].Tags, r.Tag) {
				continue
			}
			if revs[i].Distrusted {
				// counts for nothing: kept while fewer than Keep
				// trusted revisions with the tag are newer
				if kept < r.Keep || !revs[i].Time.Before(threshold) {
					continue
				}
			} else if kept++; kept <= r.Keep || !revs[i].Time.Before(threshold) {
				continue
			}
			if untag[i] == nil {
				untag[i] = make(map[string]bool)
			}
			untag[i][r.Tag] = true
		}
	}

	var changes []Change
	for j, i := range order {
		newest := j == len(order)-1
		c := Change{ID: revs[i].ID}
		for _, tag := range revs[i].Tags {
			switch {
			case untag[i][tag]:
				if !slices.Contains(c.Untag, tag) {
					c.Untag = append(c.Untag, tag)
				}
			case !slices.Contains(c.Tags, tag):
				c.Tags = append(c.Tags, tag)
			}
		}
		c.Remove = len(c.Tags) == 0 && !newest
		if len(c.Untag) == 0 && !c.Remove {
			continue
		}
		s.SortTags(c.Untag)
		s.SortTags(c.Tags)
		changes = append(changes, c)
	}
	return changes
}

// keepSince is the oldest time a revision may have and still keep r.Tag by
// age alone: now minus Keep intervals, or the beginning of time if that
// product overflows.
func keepSince(now time.Time, r Rule) time.Time {
	if int64(r.Keep) > math.MaxInt64/int64(r.Interval) {
		return time.Time{}
	}
	return now.Add(-time.Duration(r.Keep) * r.Interval)
}
