package repo

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/zeebo/blake3"
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
	sealed, err := good.marshal()
	if err != nil {
		t.Fatal(err)
	}
	newer := bytes.Replace(sealed, []byte(`"format": 2`), []byte(`"format": 3`), 1)
	newer = resealBytes(t, newer)
	cases := map[string]struct {
		body string
		want error
	}{
		"good":         {string(b), nil},
		"sealed":       {string(sealed), nil},
		"sealed newer": {string(newer), ErrFormat},
		"not json":     {"{", ErrCorruptMeta},
		"empty":        {"", ErrCorruptMeta},
		"other id":     {`{"format":1,"id":"xyz","time":"2020-01-01T00:00:00Z","size":1}`, ErrCorruptMeta},
		"unsealed 2":   {`{"format":2,"id":"abc","time":"2020-01-01T00:00:00Z","size":1}`, ErrCorruptMeta},
		"no time":      {`{"format":1,"id":"abc","size":1}`, ErrCorruptMeta},
		"bad size":     {`{"format":1,"id":"abc","time":"2020-01-01T00:00:00Z","size":-1}`, ErrCorruptMeta},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			p := writeMeta(t, dir, "abc", c.body)
			_, err := readRevisionFile(p, "abc", true)
			if !errors.Is(err, c.want) || (c.want == nil && err != nil) {
				t.Fatalf("error %v, want %v", err, c.want)
			}
			// In a sealed repository only sealed files are read.
			_, err = readRevisionFile(p, "abc", false)
			if name != "sealed" && !errors.Is(err, ErrCorruptMeta) && !errors.Is(err, ErrFormat) || name == "sealed" && err != nil {
				t.Fatalf("sealed repository: error %v", err)
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
		rev, err := readRevisionFile(p, "abc", true)
		if err != nil {
			return
		}
		if rev.ID != "abc" || rev.Size < 0 || rev.Tags == nil {
			t.Fatalf("accepted %+v", rev)
		}
	})
}

// resealBytes recomputes the seal of an edited sealed file, the way a
// person (or a test) edits metadata on purpose.
func resealBytes(t *testing.T, b []byte) []byte {
	t.Helper()
	if len(b) < sealLen {
		t.Fatal("not sealed")
	}
	body := append(append([]byte(nil), b[:len(b)-sealLen]...), unsealedTail...)
	sum := blake3.Sum256(body)
	return append(append(append(b[:len(b)-sealLen:len(b)-sealLen], sealHead...), hex.EncodeToString(sum[:])...), sealTail...)
}

func sampleRevision() *Revision {
	v := time.Date(2026, 11, 30, 1, 2, 3, 0, time.UTC)
	return &Revision{ID: "kq3vxbw7m2ahs5d4", Time: time.Date(2026, 11, 29, 23, 0, 0, 0, time.UTC),
		Parent: "abcdefghijklmnop", Kind: "differential", Tags: []string{"daily", "weekly"}, Trust: Verified,
		Source: "file:/dev/vg0/vm1", Snapshot: "snap-2", Base: "snap-1", Size: 10737418240,
		Stats:      Stats{StreamBytes: 123456789, BytesWritten: 98765, ChunksNew: 12, ChunksReused: 2548, ChunksZero: 3, Duration: 12.5},
		VerifiedAt: &v, Damage: nil}
}

// TestSealCatchesEveryBitFlip flips every bit of a sealed metadata file in
// turn: each flip must be refused, in a sealed repository and in one of
// format 1 alike, never read as an unsealed file.
func TestSealCatchesEveryBitFlip(t *testing.T) {
	b, err := sampleRevision().marshal()
	if err != nil {
		t.Fatal(err)
	}
	if !json.Valid(b) {
		t.Fatalf("sealed metadata is not JSON:\n%s", b)
	}
	if _, err := unmarshalRevision(b, false); err != nil {
		t.Fatalf("the file as written: %v", err)
	}
	flips := 0
	for i := range b {
		for bit := range 8 {
			c := bytes.Clone(b)
			c[i] ^= 1 << bit
			for _, legacy := range []bool{false, true} {
				if r, err := unmarshalRevision(c, legacy); err == nil {
					t.Fatalf("flip of bit %d of byte %d (%q) is not noticed (legacy %v): %+v", bit, i, b[i], legacy, r)
				}
			}
			flips++
		}
	}
	t.Logf("%d of %d single-bit flips of a %d-byte sealed file refused", flips, 8*len(b), len(b))
}

func TestSealedFileShape(t *testing.T) {
	b, err := sampleRevision().marshal()
	if err != nil {
		t.Fatal(err)
	}
	// The spec in docs/repository.md: the seal is the last member, and
	// the hash of the file without it, closed by "\n}\n".
	i := bytes.LastIndex(b, []byte(",\n  \"seal\": \"blake3:"))
	if i < 0 || len(b)-i != sealLen {
		t.Fatalf("seal is not the last member:\n%s", b)
	}
	body := append(bytes.Clone(b[:i]), "\n}\n"...)
	sum := blake3.Sum256(body)
	if got := string(b[i+len(sealHead) : i+len(sealHead)+64]); got != hex.EncodeToString(sum[:]) {
		t.Fatalf("seal %s, want %x", got, sum)
	}
	if !bytes.HasPrefix(b, []byte("{\n  \"format\": 2,\n")) {
		t.Fatalf("not format 2:\n%s", b)
	}
}
