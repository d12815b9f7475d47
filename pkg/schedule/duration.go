package schedule

import (
	"fmt"
	"math"
	"strings"
	"time"
)

const (
	day  = 24 * time.Hour
	week = 7 * day
)

// ParseDuration parses a duration as Go's time.ParseDuration does, with two
// more units: "d" (24 hours) and "w" (7 days). "1d", "7d", "1w2d", "6h",
// "1.5h" and "30m" are all durations; a sign, spaces or a missing unit are
// not, since a configuration never means a negative or unitless interval.
func ParseDuration(s string) (time.Duration, error) {
	if s == "" {
		return 0, fmt.Errorf("%w: empty", ErrBadDuration)
	}
	if s[0] == '-' || s[0] == '+' {
		return 0, fmt.Errorf("%w: %q: no sign allowed", ErrBadDuration, s)
	}
	var total time.Duration
	rest := s
	for rest != "" {
		num := strings.IndexFunc(rest, func(c rune) bool { return (c < '0' || c > '9') && c != '.' })
		if num <= 0 {
			return 0, fmt.Errorf("%w: %q: expected a number at %q", ErrBadDuration, s, rest)
		}
		unit := strings.IndexFunc(rest[num:], func(c rune) bool { return c >= '0' && c <= '9' || c == '.' })
		if unit < 0 {
			unit = len(rest) - num
		}
		number, name := rest[:num], rest[num:num+unit]
		rest = rest[num+unit:]

		v, err := segment(number, name)
		if err != nil {
			return 0, fmt.Errorf("%w: %q: %v", ErrBadDuration, s, err)
		}
		if total > math.MaxInt64-v {
			return 0, fmt.Errorf("%w: %q: too long", ErrBadDuration, s)
		}
		total += v
	}
	return total, nil
}

// segment converts one number-and-unit pair. Days and weeks are parsed as
// hours and multiplied, which keeps fractions such as "1.5d" exact.
func segment(number, unit string) (time.Duration, error) {
	factor := time.Duration(1)
	switch unit {
	case "d":
		unit, factor = "h", 24
	case "w":
		unit, factor = "h", 24*7
	case "":
		return 0, fmt.Errorf("missing unit after %s", number)
	}
	v, err := time.ParseDuration(number + unit)
	if err != nil {
		// time's own message repeats the input; name the part instead.
		return 0, fmt.Errorf("bad number or unit in %q", number+unit)
	}
	if v > math.MaxInt64/factor {
		return 0, fmt.Errorf("too long")
	}
	return v * factor, nil
}

// FormatDuration writes d with the largest units that fit: "1d", "7d",
// "1d12h", "30m", "1m30s". Sub-second parts use Go's notation. It is the
// inverse of ParseDuration for positive durations.
func FormatDuration(d time.Duration) string {
	if d <= 0 {
		return d.String()
	}
	var b strings.Builder
	for _, u := range []struct {
		size time.Duration
		name string
	}{{day, "d"}, {time.Hour, "h"}, {time.Minute, "m"}, {time.Second, "s"}} {
		if n := d / u.size; n > 0 {
			fmt.Fprintf(&b, "%d%s", n, u.name)
			d -= n * u.size
		}
	}
	if d > 0 {
		b.WriteString(d.String())
	}
	return b.String()
}
