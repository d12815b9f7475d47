package rbd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/backy/backy/internal/logtest"
	"github.com/backy/backy/internal/streamtest"

	"github.com/backy/backy/pkg/extent"
	"github.com/backy/backy/pkg/repo"
	"github.com/backy/backy/pkg/store"
)

// decode reads a complete stream; it fails the test on any error.
func decode(t *testing.T, b []byte) (extent.Header, []extent.Record) {
	t.Helper()
	return streamtest.Records(t, b)
}

// truncated reports whether b is a stream without END.
func truncated(b []byte) bool {
	r, err := extent.NewReader(bytes.NewReader(b))
	for err == nil {
		_, err = r.Next()
	}
	return errors.Is(err, io.ErrUnexpectedEOF)
}

func fill(p []byte, seed byte) {
	for i := range p {
		p[i] = seed + byte(i%251)
	}
}

func testImage(f *fakeEngine, name string, size int) *fakeImage {
	i := &fakeImage{head: make([]byte, size)}
	f.images[name] = i
	return i
}

func backup(t *testing.T, e Engine, opt Options) (*Result, []byte, error) {
	t.Helper()
	var buf bytes.Buffer
	res, err := Backup(context.Background(), e, &buf, opt)
	return res, buf.Bytes(), err
}

func TestBackupFullThenDifferential(t *testing.T) {
	f := newFake()
	img := testImage(f, "vm", 3*repo.ChunkSize+4096)
	fill(img.head[repo.ChunkSize-100:repo.ChunkSize+100], 1)
	dir := filepath.Join(t.TempDir(), "repo") // not there yet: full
	log, lines := logtest.New()
	opt := Options{Image: Image{Pool: "rbd", Name: "vm"}, BaseFrom: dir, ID: "one", Log: log}
	res, stream, err := backup(t, f, opt)
	notes := lines.All()
	if err != nil {
		t.Fatal(err)
	}
	h, recs := decode(t, stream)
	if h.Kind != extent.Full || h.Snapshot != "backy-one" || h.Source != "rbd:rbd/vm" || h.Size != int64(len(img.head)) {
		t.Fatalf("header %+v", h)
	}
	if !res.Created || len(notes) != 1 || !strings.Contains(notes[0], "no revisions") {
		t.Fatalf("result %+v, notes %q", res, notes)
	}
	// The 64 KiB pieces across the first chunk boundary stay two records;
	// what a full stream does not name is zero.
	if len(recs) != 2 || recs[0].Offset != repo.ChunkSize-64<<10 || recs[1].Offset != repo.ChunkSize {
		t.Fatalf("records %v", summarize(recs))
	}
	r, err := repo.OpenOrCreate(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Store(context.Background(), r, bytes.NewReader(stream), store.Options{}); err != nil {
		t.Fatal(err)
	}

	// A foreign snapshot and a stale backy one, both older.
	f.CreateSnapshot(context.Background(), Image{"rbd", "vm", "manual"})
	fill(img.head[2*repo.ChunkSize:2*repo.ChunkSize+10], 9)
	opt.ID = "two"
	res, stream, err = backup(t, f, opt)
	if err != nil {
		t.Fatal(err)
	}
	h, recs = decode(t, stream)
	if h.Kind != extent.Differential || h.Base != "backy-one" || h.Snapshot != "backy-two" {
		t.Fatalf("header %+v", h)
	}
	if len(recs) != 1 || recs[0].Offset != 2*repo.ChunkSize {
		t.Fatalf("records %v", summarize(recs))
	}
	if len(res.Removed) != 0 {
		t.Fatalf("removed %v, but the base and a foreign snapshot are all there is", res.Removed)
	}
	// A third run, from the same base (revision two was never stored):
	// backy-two goes, the base and the foreign snapshot stay.
	opt.ID = "three"
	if res, _, err = backup(t, f, opt); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Removed, []string{"backy-two"}) {
		t.Fatalf("removed %v, want backy-two", res.Removed)
	}
	snaps, _ := f.Snapshots(context.Background(), Image{Pool: "rbd", Name: "vm"})
	if got := names(snaps); !slices.Equal(got, []string{"backy-one", "manual", "backy-three"}) {
		t.Fatalf("snapshots %v", got)
	}
}

func names(s []Snap) []string {
	var n []string
	for _, x := range s {
		n = append(n, x.Name)
	}
	return n
}

func summarize(recs []extent.Record) []string {
	var s []string
	for _, r := range recs {
		s = append(s, fmt.Sprintf("%s %d+%d", r.Type, r.Offset, r.Length))
	}
	return s
}

func TestBackupFallsBackToFull(t *testing.T) {
	f := newFake()
	img := testImage(f, "vm", repo.ChunkSize)
	fill(img.head[:100], 3)
	dir := filepath.Join(t.TempDir(), "repo")
	opt := Options{Image: Image{Pool: "rbd", Name: "vm"}, BaseFrom: dir, ID: "a"}
	_, stream, err := backup(t, f, opt)
	if err != nil {
		t.Fatal(err)
	}
	r, _ := repo.OpenOrCreate(dir)
	rev, err := store.Store(context.Background(), r, bytes.NewReader(stream), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	kind := func(opt Options) (extent.Header, []string) {
		t.Helper()
		log, lines := logtest.New()
		opt.Log = log
		_, stream, err := backup(t, f, opt)
		if err != nil {
			t.Fatal(err)
		}
		h, _ := decode(t, stream)
		return h, lines.All()
	}
	opt.ID = "b"
	if h, _ := kind(opt); h.Kind != extent.Differential || h.Base != "backy-a" {
		t.Fatalf("header %+v, want a diff from backy-a", h)
	}
	opt.ID, opt.Full = "c", true
	if h, _ := kind(opt); h.Kind != extent.Full {
		t.Fatalf("--full gave %+v", h)
	}
	opt.Full = false
	// The run with --full removed backy-a: the base is gone.
	opt.ID = "d"
	if h, notes := kind(opt); h.Kind != extent.Full || !strings.Contains(notes[0], "no longer exists") {
		t.Fatalf("missing base gave %+v, %q", h, notes)
	}
	// A distrusted parent is no base, even with its snapshot there.
	f.CreateSnapshot(context.Background(), Image{"rbd", "vm", "backy-a"})
	rev.Trust = repo.Distrusted
	if err := r.SaveRevision(rev); err != nil {
		t.Fatal(err)
	}
	opt.ID = "e"
	if h, notes := kind(opt); h.Kind != extent.Full || !strings.Contains(notes[0], "distrusted") {
		t.Fatalf("distrusted parent gave %+v, %q", h, notes)
	}
	// --from-snap names the base directly.
	if h, _ := kind(Options{Image: opt.Image, FromSnap: "backy-e", ID: "f"}); h.Kind != extent.Differential || h.Base != "backy-e" {
		t.Fatalf("--from-snap gave %+v", h)
	}
}

func TestBackupFailureRemovesSnapshot(t *testing.T) {
	f := newFake()
	img := testImage(f, "vm", 2*repo.ChunkSize)
	fill(img.head, 5)
	f.failAt = 3
	_, stream, err := backup(t, f, Options{Image: Image{Pool: "rbd", Name: "vm"}, ID: "x"})
	if !errors.Is(err, errInjected) {
		t.Fatalf("error %v, want the injected one", err)
	}
	if !truncated(stream) {
		t.Fatal("a failed backup wrote a complete stream")
	}
	if !slices.Equal(f.calls, []string{"create backy-x", "remove backy-x"}) {
		t.Fatalf("calls %v", f.calls)
	}
}

func TestBackupWriteErrorRemovesSnapshot(t *testing.T) {
	f := newFake()
	img := testImage(f, "vm", 2*repo.ChunkSize)
	fill(img.head, 5)
	_, err := Backup(context.Background(), f, failWriter{}, Options{Image: Image{Pool: "rbd", Name: "vm"}, ID: "x"})
	if err == nil || !slices.Equal(f.calls, []string{"create backy-x", "remove backy-x"}) {
		t.Fatalf("error %v, calls %v", err, f.calls)
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("broken pipe") }

func TestBackupRefusals(t *testing.T) {
	f := newFake()
	testImage(f, "vm", repo.ChunkSize)
	f.CreateSnapshot(context.Background(), Image{"rbd", "vm", "backy-taken"})
	for name, c := range map[string]struct {
		opt  Options
		want error
	}{
		"no pool":     {Options{Image: Image{Pool: "nope", Name: "vm"}}, ErrNotFound},
		"no image":    {Options{Image: Image{Pool: "rbd", Name: "nope"}}, ErrNotFound},
		"no snapshot": {Options{Image: Image{Pool: "rbd", Name: "vm", Snap: "nope"}}, ErrNotFound},
		"id taken":    {Options{Image: Image{Pool: "rbd", Name: "vm"}, ID: "taken"}, ErrSnapExists},
		"bad id":      {Options{Image: Image{Pool: "rbd", Name: "vm"}, ID: "a/b"}, ErrBadName},
		"sample head": {Options{Image: Image{Pool: "rbd", Name: "vm"}, Sample: 5}, ErrBadName},
		"not a repo":  {Options{Image: Image{Pool: "rbd", Name: "vm"}, BaseFrom: "."}, repo.ErrNotRepository},
	} {
		f.calls = nil
		_, stream, err := backup(t, f, c.opt)
		if !errors.Is(err, c.want) {
			t.Errorf("%s: error %v, want %v", name, err, c.want)
		}
		if len(stream) > 0 || len(f.calls) > 0 {
			t.Errorf("%s: wrote %d bytes, calls %v", name, len(stream), f.calls)
		}
	}
}

func TestParseImage(t *testing.T) {
	for in, want := range map[string]Image{
		"rbd/vm":        {"rbd", "vm", ""},
		"rbd.ssd/vm@s1": {"rbd.ssd", "vm", "s1"},
	} {
		got, err := ParseImage(in)
		if err != nil || got != want || got.String() != in {
			t.Errorf("ParseImage(%q) = %+v, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "vm", "/vm", "rbd/", "rbd/ns/vm", "rbd/vm@", "rbd/v m"} {
		if _, err := ParseImage(in); !errors.Is(err, ErrBadName) {
			t.Errorf("ParseImage(%q): %v, want ErrBadName", in, err)
		}
	}
}

// Backy snapshots made by another run of the same image after this run
// listed the snapshots - just before its own snapshot or while it streams
// - belong to a run still going on: the run removes only older backy
// snapshots it listed before making its own.
func TestBackupKeepsSnapshotsMadeMeanwhile(t *testing.T) {
	f := newFake()
	img := testImage(f, "vm", 2*repo.ChunkSize)
	fill(img.head[:100], 1)
	vm := Image{Pool: "rbd", Name: "vm"}
	for _, name := range []string{"backy-old", "backy-base", "other"} {
		if err := f.CreateSnapshot(context.Background(), vm.At(name)); err != nil {
			t.Fatal(err)
		}
	}
	other := func(name string) func() {
		return func() {
			f.onCreate = nil
			if err := f.CreateSnapshot(context.Background(), vm.At(name)); err != nil {
				t.Error(err)
			}
		}
	}
	f.onCreate = other("backy-before")
	f.onDiff = func() { f.onDiff = nil; other("backy-during")() }
	res, _, err := backup(t, f, Options{Image: vm, FromSnap: "backy-base", ID: "new"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Removed, []string{"backy-old"}) {
		t.Fatalf("removed %v, want backy-old", res.Removed)
	}
	snaps, _ := f.Snapshots(context.Background(), vm)
	if got := names(snaps); !slices.Equal(got, []string{"backy-base", "other", "backy-before", "backy-new", "backy-during"}) {
		t.Fatalf("snapshots %v", got)
	}
}
