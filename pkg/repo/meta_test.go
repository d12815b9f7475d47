package repo

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"
)

func TestRevisionIDs(t *testing.T) {
	re := regexp.MustCompile(`^[a-z][a-z2-7]{15}$`)
	seen := map[string]bool{}
	for range 10000 {
		id := NewRevisionID()
		if !re.MatchString(id) {
			t.Fatalf("bad id %q", id)
		}
		if seen[id] {
			t.Fatalf("duplicate id %q", id)
		}
		seen[id] = true
	}
}

func writeMeta(t *testing.T, dir, id string, body string) string {
	t.Helper()
	p := filepath.Join(dir, id+".rev")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestReadRevisionFile(t *testing.T) {
	dir := t.TempDir()
	good := Revision{Format: 1, ID: "abc", Time: time.Unix(1e9, 0).UTC(), Kind: "full", Trust: Trusted, Size: 10}
	b, _ := json.Marshal(good)
	cases := map[string]struct {
		body string
		want error
	}{
		"good":         {string(b), nil},
		"not json":     {"{", ErrCorruptMeta},
		"empty":        {"", ErrCorruptMeta},
		"other id":     {`{"format":1,"id":"xyz","time":"2020-01-01T00:00:00Z","size":1}`, ErrCorruptMeta},
		"newer format": {`{"format":2,"id":"abc","time":"2020-01-01T00:00:00Z","size":1}`, ErrFormat},
		"no time":      {`{"format":1,"id":"abc","size":1}`, ErrCorruptMeta},
		"bad size":     {`{"format":1,"id":"abc","time":"2020-01-01T00:00:00Z","size":-1}`, ErrCorruptMeta},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			p := writeMeta(t, dir, "abc", c.body)
			_, err := readRevisionFile(p, "abc")
			if !errors.Is(err, c.want) || (c.want == nil && err != nil) {
				t.Fatalf("error %v, want %v", err, c.want)
			}
		})
	}
}

func FuzzRevisionMeta(f *testing.F) {
	f.Add([]byte(`{"format":1,"id":"abc","time":"2020-01-01T00:00:00Z","size":1,"tags":["daily"]}`))
	f.Add([]byte(`{}`))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		p := filepath.Join(dir, "abc.rev")
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		rev, err := readRevisionFile(p, "abc")
		if err != nil {
			return
		}
		if rev.ID != "abc" || rev.Size < 0 || rev.Tags == nil {
			t.Fatalf("accepted %+v", rev)
		}
	})
}
