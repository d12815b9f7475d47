package upkeep

import (
	"errors"
	"fmt"
	"time"

	"github.com/backy/backy/pkg/repo"
)

// Selection says which revisions a command works on: one revision spec, a
// time range (dates as typed by the user), or every revision. The zero
// value means the newest revision.
type Selection struct {
	Spec  string // latest, a tag, an id or id prefix, N
	From  string // YYYY-MM-DD or RFC 3339; empty: open
	Until string // YYYY-MM-DD (the whole day) or RFC 3339; empty: open
	All   bool
}

func (s Selection) isRange() bool { return s.From != "" || s.Until != "" }

// Select applies the selection to revs (oldest first). A spec that names
// no revision is repo.ErrNoRevision (or repo.ErrAmbiguous); a range without
// revisions is ErrNoMatch. All on an empty repository selects nothing.
func Select(revs []*repo.Revision, s Selection) ([]*repo.Revision, error) {
	modes := 0
	for _, set := range []bool{s.Spec != "", s.isRange(), s.All} {
		if set {
			modes++
		}
	}
	if modes > 1 {
		return nil, fmt.Errorf("%w: give one of a revision spec, a date range or all", ErrSelection)
	}
	switch {
	case s.All:
		return revs, nil
	case s.isRange():
		return selectRange(revs, s.From, s.Until)
	}
	rev, err := repo.Resolve(revs, s.Spec)
	if err != nil {
		return nil, err
	}
	return []*repo.Revision{rev}, nil
}

// selectIntact is Select while bad lists revisions whose metadata cannot
// be read: a range or all takes the intact ones, a spec is answered only
// when it names an intact revision by id (repo.ResolveIntact).
func selectIntact(revs []*repo.Revision, bad []error, s Selection) ([]*repo.Revision, error) {
	if len(bad) == 0 || s.All || s.isRange() {
		return Select(revs, s)
	}
	if _, err := Select(nil, s); errors.Is(err, ErrSelection) {
		return nil, err
	}
	rev, err := repo.ResolveIntact(revs, bad, s.Spec)
	if err != nil {
		return nil, err
	}
	return []*repo.Revision{rev}, nil
}

func selectRange(revs []*repo.Revision, from, until string) ([]*repo.Revision, error) {
	lo, hi := time.Time{}, time.Time{}
	var err error
	if from != "" {
		if lo, err = ParseDate(from, false); err != nil {
			return nil, err
		}
	}
	if until != "" {
		if hi, err = ParseDate(until, true); err != nil {
			return nil, err
		}
	}
	var out []*repo.Revision
	for _, r := range revs {
		if (from == "" || !r.Time.Before(lo)) && (until == "" || r.Time.Before(hi)) {
			out = append(out, r)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: none taken %s", ErrNoMatch, describeRange(from, until))
	}
	return out, nil
}

func describeRange(from, until string) string {
	switch {
	case from == "":
		return "until " + until
	case until == "":
		return "from " + from
	}
	return "from " + from + " until " + until
}

// ParseDate parses YYYY-MM-DD (local time) or RFC 3339. It returns the
// start of the range the text names, or with end set the instant just
// after it: "--until 2025-03-01" takes in the whole day.
func ParseDate(s string, end bool) (time.Time, error) {
	if t, err := time.ParseInLocation(time.DateOnly, s, time.Local); err == nil {
		if end {
			t = t.AddDate(0, 0, 1)
		}
		return t, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%w %q: want YYYY-MM-DD or RFC 3339 (2006-01-02T15:04:05Z)", ErrBadDate, s)
	}
	if end {
		t = t.Add(time.Nanosecond)
	}
	return t, nil
}
