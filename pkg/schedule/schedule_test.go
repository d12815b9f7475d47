package schedule

import (
	"errors"
	"slices"
	"testing"
	"time"
)

// standard is the schedule most tests use: the original backy's example.
func standard(t testing.TB) Schedule {
	t.Helper()
	s, err := New(
		Rule{Tag: "monthly", Interval: 30 * day, Keep: 4},
		Rule{Tag: "daily", Interval: day, Keep: 9},
		Rule{Tag: "weekly", Interval: week, Keep: 5},
	)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestNewSortsRules(t *testing.T) {
	s := standard(t)
	var tags []string
	for _, r := range s.Rules() {
		tags = append(tags, r.Tag)
	}
	if want := []string{"daily", "weekly", "monthly"}; !slices.Equal(tags, want) {
		t.Errorf("rules in order %v, want %v", tags, want)
	}
	if s.Shortest() != day || s.Len() != 3 {
		t.Errorf("Shortest() = %v, Len() = %d", s.Shortest(), s.Len())
	}
	if r, ok := s.Rule("weekly"); !ok || r.Keep != 5 {
		t.Errorf("Rule(weekly) = %v, %v", r, ok)
	}
	if _, ok := s.Rule("hourly"); ok {
		t.Error("Rule(hourly) found a rule that is not there")
	}
	if got := s.Rules()[0].String(); got != "daily=1d keep 9" {
		t.Errorf("String() = %q", got)
	}
}

func TestNewRejects(t *testing.T) {
	for _, tc := range []struct {
		name  string
		rules []Rule
		want  error
	}{
		{"empty tag", []Rule{{Tag: "", Interval: day, Keep: 1}}, ErrBadTag},
		{"numeric tag", []Rule{{Tag: "1st", Interval: day, Keep: 1}}, ErrBadTag},
		{"tag with comma", []Rule{{Tag: "a,b", Interval: day, Keep: 1}}, ErrBadTag},
		{"duplicate tag", []Rule{{Tag: "d", Interval: day, Keep: 1}, {Tag: "d", Interval: week, Keep: 1}}, ErrBadRule},
		{"interval too short", []Rule{{Tag: "d", Interval: time.Second, Keep: 1}}, ErrBadRule},
		{"interval too long", []Rule{{Tag: "d", Interval: MaxInterval + 1, Keep: 1}}, ErrBadRule},
		{"keep zero", []Rule{{Tag: "d", Interval: day, Keep: 0}}, ErrBadRule},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := New(tc.rules...); !errors.Is(err, tc.want) {
				t.Errorf("New() error = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestSortTags(t *testing.T) {
	tags := []string{"manual", "monthly", "daily", "adhoc", "weekly"}
	standard(t).SortTags(tags)
	if want := []string{"daily", "weekly", "monthly", "adhoc", "manual"}; !slices.Equal(tags, want) {
		t.Errorf("SortTags() = %v, want %v", tags, want)
	}
}

func TestCheckTag(t *testing.T) {
	for _, tag := range []string{"daily", "Daily", "x", "tag-2.b_c"} {
		if err := CheckTag(tag); err != nil {
			t.Errorf("CheckTag(%q) = %v", tag, err)
		}
	}
	for _, tag := range []string{"", "0", "-x", "a b", "a/b", "ä", string(make([]byte, 65))} {
		if err := CheckTag(tag); !errors.Is(err, ErrBadTag) {
			t.Errorf("CheckTag(%q) = %v, want ErrBadTag", tag, err)
		}
	}
}

func TestMinimumIntervalTestOverride(t *testing.T) {
	if got := MinimumInterval(); got != MinInterval {
		t.Fatalf("MinimumInterval() = %s without %s", got, TestMinIntervalEnv)
	}
	for v, want := range map[string]time.Duration{
		"2s": 2 * time.Second, "500ms": MinInterval, "1h": MinInterval, "junk": MinInterval,
	} {
		t.Setenv(TestMinIntervalEnv, v)
		if got := MinimumInterval(); got != want {
			t.Errorf("%s=%s: MinimumInterval() = %s, want %s", TestMinIntervalEnv, v, got, want)
		}
	}
	t.Setenv(TestMinIntervalEnv, "2s")
	if _, err := New(Rule{Tag: "fast", Interval: 2 * time.Second, Keep: 1}); err != nil {
		t.Errorf("New with a 2s interval under the override: %v", err)
	}
	if _, err := New(Rule{Tag: "fast", Interval: time.Second, Keep: 1}); err == nil {
		t.Error("New accepted 1s below a 2s override")
	}
}
