package rbd_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/backy/backy/internal/pattern"

	"github.com/backy/backy/pkg/extent"
	"github.com/backy/backy/pkg/quiesce"
	"github.com/backy/backy/pkg/rbd"
	"github.com/backy/backy/pkg/rbd/cephtest"
	"github.com/backy/backy/pkg/rbd/librbd"
	"github.com/backy/backy/pkg/rbddiff"
	"github.com/backy/backy/pkg/repo"
	"github.com/backy/backy/pkg/restore"
	"github.com/backy/backy/pkg/store"
)

// The tests named TestCeph* run against a real cluster (package cephtest);
// they are skipped when Ceph is not installed and BACKY_REQUIRE_CEPH is
// unset, and fail when it is set.

func TestMain(m *testing.M) {
	if os.Getenv(quiesce.HelperEnv) != "" {
		os.Exit(quiesce.HelperMain()) // the freeze/thaw helper of the freeze benchmark
	}
	os.Exit(cephtest.Main(m))
}

const (
	KiB = 1 << 10
	MiB = 1 << 20
)

var imageSeq atomic.Int64

// newImage creates an image of size bytes with a name unique in the run.
func newImage(t testing.TB, conf, prefix string, size int64) rbd.Image {
	t.Helper()
	img := rbd.Image{Pool: "rbd", Name: fmt.Sprintf("%s-%d", prefix, imageSeq.Add(1))}
	cephtest.Rbd(t, conf, nil, "create", "--size", fmt.Sprintf("%dK", size/KiB), img.Spec())
	return img
}

// engines returns the engines this build has, connected to the cluster.
func engines(t testing.TB, conf string) []rbd.Engine {
	t.Helper()
	list := []rbd.Engine{rbd.NewCLI(rbd.Conn{Conf: conf})}
	if !librbd.Available {
		t.Logf("built without the librbd tag: testing the CLI engine only")
		return list
	}
	e, err := librbd.New(context.Background(), rbd.Conn{Conf: conf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return append(list, e)
}

// write is data (or, when nil, a zero range of n bytes) at off.
type write struct {
	off, n int64
	data   []byte
}

func at(off int64, n int, seed uint32) write { return write{off: off, data: pattern.NonZero(seed, n)} }
func zeros(off, n int64) write               { return write{off: off, n: n} }

// writeImage writes at chosen offsets by applying a crafted diff with
// `rbd import-diff`; size (the image size after it) resizes the image.
func writeImage(t testing.TB, conf string, img rbd.Image, size int64, ws ...write) {
	t.Helper()
	var buf bytes.Buffer
	w := rbddiff.NewWriter(&buf)
	must(t, w.WriteHeader(&rbddiff.Header{Version: 1, Size: uint64(size)}))
	for _, x := range ws {
		if x.data != nil {
			must(t, w.WriteData(uint64(x.off), x.data))
		} else {
			must(t, w.WriteZero(uint64(x.off), uint64(x.n)))
		}
	}
	must(t, w.Close())
	cephtest.Rbd(t, conf, &buf, "import-diff", "--no-progress", "-", img.Spec())
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// export returns the image (at its snapshot) as `rbd export` gives it.
func export(t testing.TB, conf string, img rbd.Image) []byte {
	t.Helper()
	return cephtest.Rbd(t, conf, nil, "export", "--no-progress", img.String(), "-")
}

func snapNames(t testing.TB, e rbd.Engine, img rbd.Image) []string {
	t.Helper()
	snaps, err := e.Snapshots(context.Background(), img)
	must(t, err)
	var n []string
	for _, s := range snaps {
		n = append(n, s.Name)
	}
	return n
}

// extract runs Backup into a buffer.
func extract(t testing.TB, e rbd.Engine, opt rbd.Options) ([]byte, *rbd.Result, error) {
	t.Helper()
	var buf bytes.Buffer
	res, err := rbd.Backup(context.Background(), e, &buf, opt)
	return buf.Bytes(), res, err
}

func newRepo(t testing.TB) *repo.Repo {
	t.Helper()
	r, err := repo.OpenOrCreate(filepath.Join(t.TempDir(), "repo"))
	must(t, err)
	return r
}

func storeStream(t testing.TB, r *repo.Repo, stream []byte) *repo.Revision {
	t.Helper()
	rev, err := store.Store(context.Background(), r, bytes.NewReader(stream), store.Options{})
	must(t, err)
	return rev
}

// restored returns a revision as a raw image.
func restored(t testing.TB, r *repo.Repo, rev *repo.Revision) []byte {
	t.Helper()
	ix, err := r.Index(rev.ID)
	must(t, err)
	var buf bytes.Buffer
	must(t, restore.Raw(context.Background(), r, rev, ix, &buf, restore.Options{}))
	return buf.Bytes()
}

// sameAsSnapshot fails unless the revision restores to exactly what
// `rbd export` gives for its snapshot.
func sameAsSnapshot(t testing.TB, conf string, r *repo.Repo, rev *repo.Revision, img rbd.Image) {
	t.Helper()
	want := export(t, conf, img.At(rev.Snapshot))
	got := restored(t, r, rev)
	if !bytes.Equal(got, want) {
		t.Fatalf("revision %s (%s) restores to %d bytes that differ from rbd export of %s (%d bytes) at %s",
			rev.ID, rev.Kind, len(got), img.At(rev.Snapshot), len(want), firstDiff(got, want))
	}
}

func firstDiff(a, b []byte) string {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return fmt.Sprintf("offset %d", i)
		}
	}
	return fmt.Sprintf("offset %d (length)", min(len(a), len(b)))
}

func header(t testing.TB, stream []byte) (extent.Header, extent.Summary) {
	t.Helper()
	r, err := extent.NewReader(bytes.NewReader(stream))
	must(t, err)
	for {
		_, err := r.Next()
		if err == io.EOF {
			return r.Header(), r.Summary()
		}
		must(t, err)
	}
}

// records returns the data and zero records of a complete stream, without
// their data.
func records(t testing.TB, stream []byte) []extent.Record {
	t.Helper()
	r, err := extent.NewReader(bytes.NewReader(stream))
	must(t, err)
	var recs []extent.Record
	for {
		rec, err := r.Next()
		if err == io.EOF {
			return recs
		}
		must(t, err)
		recs = append(recs, extent.Record{Type: rec.Type, Offset: rec.Offset, Length: rec.Length})
	}
}
