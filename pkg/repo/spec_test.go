package repo

import (
	"errors"
	"os"
	"testing"
	"time"
)

func TestResolve(t *testing.T) {
	at := func(h int) time.Time { return time.Date(2026, 1, 1, h, 0, 0, 0, time.UTC) }
	revs := []*Revision{
		{ID: "abcdef", Time: at(1), Tags: []string{"daily", "weekly"}},
		{ID: "abczzz", Time: at(2), Tags: []string{"daily"}},
		{ID: "qqqqqq", Time: at(3), Tags: []string{"hourly", "abcdef", "abc"}},
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
		// an id names its revision even when another carries it as a
		// tag (which would make a restore, or NBD's multi-conn that
		// trusts an id to stay put, take the tagged one); a tag still
		// comes before an id prefix
		{"abcdef", "abcdef", nil},
		{"abcz", "abczzz", nil},
		{"q", "qqqqqq", nil},
		{"abc", "qqqqqq", nil},
		{"abcd", "abcdef", nil},
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
	if _, err := Resolve(revs[:2], "abc"); !errors.Is(err, ErrAmbiguous) {
		t.Errorf("abc among abcdef and abczzz: %v, want ErrAmbiguous", err)
	}
	if _, err := Resolve(nil, "latest"); !errors.Is(err, ErrNoRevision) {
		t.Errorf("empty repository: %v", err)
	}
}

func TestFindPastDamagedMetadata(t *testing.T) {
	r, err := OpenOrCreate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for i, id := range []string{"aaaaaaaa", "bbbbbbbb"} {
		rev := &Revision{ID: id, Time: time.Date(2026, 1, 1, i, 0, 0, 0, time.UTC), Kind: "full", Trust: Trusted}
		if err := r.Commit(rev, NewIndex(0)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(r.revPath("bbbbbbbb", ".rev"), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if rev, err := r.Find("aaaa"); err != nil || rev.ID != "aaaaaaaa" {
		t.Fatalf("intact revision by prefix: %v, %v", rev, err)
	}
	for _, spec := range []string{"latest", "0", "bbbb"} {
		if _, err := r.Find(spec); !errors.Is(err, ErrCorruptMeta) {
			t.Errorf("%q: %v, want ErrCorruptMeta", spec, err)
		}
	}
}
