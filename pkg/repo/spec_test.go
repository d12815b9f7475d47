package repo

import (
	"errors"
	"testing"
	"time"
)

func TestResolve(t *testing.T) {
	at := func(h int) time.Time { return time.Date(2026, 1, 1, h, 0, 0, 0, time.UTC) }
	revs := []*Revision{
		{ID: "abcdef", Time: at(1), Tags: []string{"daily", "weekly"}},
		{ID: "abczzz", Time: at(2), Tags: []string{"daily"}},
		{ID: "qqqqqq", Time: at(3), Tags: []string{"hourly"}},
	}
	cases := []struct {
		spec, want string
		err        error
	}{
		{"", "qqqqqq", nil},
		{"latest", "qqqqqq", nil},
		{"last", "qqqqqq", nil},
		{"0", "qqqqqq", nil},
		{"2", "abcdef", nil},
		{"3", "", ErrNoRevision},
		{"daily", "abczzz", nil},
		{"weekly", "abcdef", nil},
		{"abcdef", "abcdef", nil},
		{"abcz", "abczzz", nil},
		{"q", "qqqqqq", nil},
		{"abc", "", ErrAmbiguous},
		{"nosuch", "", ErrNoRevision},
	}
	for _, c := range cases {
		got, err := Resolve(revs, c.spec)
		if c.err != nil {
			if !errors.Is(err, c.err) {
				t.Errorf("%q: error %v, want %v", c.spec, err, c.err)
			}
			continue
		}
		if err != nil || got.ID != c.want {
			t.Errorf("%q: got %v, %v; want %s", c.spec, got, err, c.want)
		}
	}
	if _, err := Resolve(nil, "latest"); !errors.Is(err, ErrNoRevision) {
		t.Errorf("empty repository: %v", err)
	}
}
