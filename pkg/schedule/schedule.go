package schedule

import (
	"cmp"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/backy/backy/pkg/exitcode"
)

// Bounds of a rule's interval: a shorter interval would make the daemon spin,
// a longer one overflows the slot arithmetic.
const (
	MinInterval = time.Minute
	MaxInterval = 10 * 365 * 24 * time.Hour
)

// TestMinIntervalEnv names the environment variable that lowers
// MinimumInterval, so that an end-to-end test can watch the daemon make and
// expire revisions seconds apart. It is for tests only: no operator needs
// backups more often than every minute.
const TestMinIntervalEnv = "BACKY_TEST_MIN_INTERVAL"

// MinimumInterval is the shortest interval a rule may have: MinInterval, or
// the duration in $BACKY_TEST_MIN_INTERVAL when that is a valid duration of
// at least one second. The variable is read on every call so that tests can
// set it; child processes (backy-store expire) inherit it with the daemon's
// environment.
func MinimumInterval() time.Duration {
	if v := os.Getenv(TestMinIntervalEnv); v != "" {
		if d, err := ParseDuration(v); err == nil && d >= time.Second && d < MinInterval {
			return d
		}
	}
	return MinInterval
}

// Errors returned when a schedule or one of its parts is not acceptable.
var (
	ErrBadRule     = exitcode.New(exitcode.Usage, "schedule: bad rule")
	ErrBadTag      = exitcode.New(exitcode.Usage, "schedule: bad tag")
	ErrBadDuration = exitcode.New(exitcode.Usage, "schedule: bad duration")
)

// Rule says how often a tag is taken and how many revisions keep it.
type Rule struct {
	Tag      string
	Interval time.Duration
	Keep     int
}

// String formats the rule the way the configuration spells it.
func (r Rule) String() string {
	return fmt.Sprintf("%s=%s keep %d", r.Tag, FormatDuration(r.Interval), r.Keep)
}

// grace is how much earlier than its slot a run may happen and still count
// for that slot: five minutes, but never more than a tenth of the interval.
func (r Rule) grace() time.Duration {
	return min(Grace, r.Interval/10)
}

// Grace is the longest time by which a run may precede a tag's slot and still
// count for it (see the package documentation).
const Grace = 5 * time.Minute

// Schedule is a validated set of rules with distinct tags, ordered by interval
// (shortest first) and then by tag. The zero value is an empty schedule that
// is never due and expires nothing.
type Schedule struct {
	rules []Rule
}

// New validates rules and returns them as a schedule.
func New(rules ...Rule) (Schedule, error) {
	seen := make(map[string]bool, len(rules))
	for _, r := range rules {
		if err := CheckTag(r.Tag); err != nil {
			return Schedule{}, err
		}
		if seen[r.Tag] {
			return Schedule{}, fmt.Errorf("%w: tag %q appears twice", ErrBadRule, r.Tag)
		}
		seen[r.Tag] = true
		if lo := MinimumInterval(); r.Interval < lo || r.Interval > MaxInterval {
			return Schedule{}, fmt.Errorf("%w: tag %q: interval %s is not between %s and %s",
				ErrBadRule, r.Tag, FormatDuration(r.Interval), FormatDuration(lo), FormatDuration(MaxInterval))
		}
		if r.Keep < 1 {
			return Schedule{}, fmt.Errorf("%w: tag %q: keep %d is less than 1", ErrBadRule, r.Tag, r.Keep)
		}
	}
	sorted := slices.Clone(rules)
	slices.SortFunc(sorted, func(a, b Rule) int {
		if a.Interval != b.Interval {
			return cmp.Compare(a.Interval, b.Interval)
		}
		return strings.Compare(a.Tag, b.Tag)
	})
	return Schedule{rules: sorted}, nil
}

// Rules returns a copy of the rules, shortest interval first.
func (s Schedule) Rules() []Rule { return slices.Clone(s.rules) }

// Len is the number of tags in the schedule.
func (s Schedule) Len() int { return len(s.rules) }

// Rule returns the rule for tag, if the schedule has one.
func (s Schedule) Rule(tag string) (Rule, bool) {
	for _, r := range s.rules {
		if r.Tag == tag {
			return r, true
		}
	}
	return Rule{}, false
}

// Shortest is the smallest interval of the schedule, 0 if it is empty. A job
// whose newest revision is much older than this is behind its schedule.
func (s Schedule) Shortest() time.Duration {
	if len(s.rules) == 0 {
		return 0
	}
	return s.rules[0].Interval
}

// SortTags orders tags the way the schedule does: shortest interval first,
// then tags the schedule does not know, by name.
func (s Schedule) SortTags(tags []string) {
	rank := func(t string) time.Duration {
		if r, ok := s.Rule(t); ok {
			return r.Interval
		}
		return MaxInterval + 1
	}
	slices.SortFunc(tags, func(a, b string) int {
		if ra, rb := rank(a), rank(b); ra != rb {
			return cmp.Compare(ra, rb)
		}
		return strings.Compare(a, b)
	})
}

// CheckTag reports whether tag is usable as a schedule tag: a letter, then up
// to 63 letters, digits, '.', '_' or '-'. Starting with a letter keeps tags
// apart from the numeric revision specs ("0" is the newest revision).
func CheckTag(tag string) error {
	if tag == "" {
		return fmt.Errorf("%w: empty tag", ErrBadTag)
	}
	if len(tag) > 64 {
		return fmt.Errorf("%w: %q is longer than 64 bytes", ErrBadTag, tag)
	}
	for i, c := range tag {
		letter := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
		if letter || i > 0 && (c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			continue
		}
		return fmt.Errorf("%w: %q must be a letter followed by letters, digits, '.', '_' or '-'", ErrBadTag, tag)
	}
	return nil
}
