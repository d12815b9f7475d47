package schedule

import (
	"errors"
	"testing"
	"time"
)

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"1d":    day,
		"7d":    week,
		"30d":   30 * day,
		"1w":    week,
		"1w2d":  9 * day,
		"1.5d":  36 * time.Hour,
		"6h":    6 * time.Hour,
		"1h30m": 90 * time.Minute,
		"30m":   30 * time.Minute,
		"90s":   90 * time.Second,
		"500ms": 500 * time.Millisecond,
		"0d":    0,
	} {
		got, err := ParseDuration(in)
		if err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
}

func TestParseDurationRejects(t *testing.T) {
	for _, in := range []string{"", "-1d", "+1d", "1", "d", "1x", "1d ", " 1d", "1d1", "1.2.3h", "1e3h", "99999999999w", "200000w200000w"} {
		if got, err := ParseDuration(in); !errors.Is(err, ErrBadDuration) {
			t.Errorf("ParseDuration(%q) = %v, %v; want ErrBadDuration", in, got, err)
		}
	}
}

func TestFormatDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		day:                             "1d",
		week:                            "7d",
		36 * time.Hour:                  "1d12h",
		30 * time.Minute:                "30m",
		90 * time.Second:                "1m30s",
		time.Second + time.Millisecond:  "1s1ms",
		0:                               "0s",
		day + time.Minute + time.Second: "1d1m1s",
	} {
		if got := FormatDuration(d); got != want {
			t.Errorf("FormatDuration(%v) = %q, want %q", d, got, want)
		}
		if d > 0 {
			if back, err := ParseDuration(FormatDuration(d)); err != nil || back != d {
				t.Errorf("ParseDuration(FormatDuration(%v)) = %v, %v", d, back, err)
			}
		}
	}
}
