package rbd_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/backy/backy/internal/logtest"
	"github.com/backy/backy/pkg/extent"
	"github.com/backy/backy/pkg/rbd"
	"github.com/backy/backy/pkg/rbd/cephtest"
	"github.com/backy/backy/pkg/repo"
	"github.com/backy/backy/pkg/restore"
	"github.com/backy/backy/pkg/store"
)

// A full backup, writes at chosen offsets, differential backups (one with
// whole objects), each restored and compared with rbd export of its
// snapshot; snapshot clean-up leaves the base and a foreign snapshot alone.
func TestCephBackupCycle(t *testing.T) {
	conf := cephtest.Start(t)
	for _, e := range engines(t, conf) {
		t.Run(e.Name(), func(t *testing.T) {
			img := newImage(t, conf, "cycle-"+e.Name(), 40*MiB)
			writeImage(t, conf, img, 40*MiB, at(0, 8*KiB, 1), at(5*MiB, MiB, 2),
				at(20*MiB-100, 200, 3), at(39*MiB, MiB, 4))
			r := newRepo(t)
			opt := rbd.Options{Image: img, BaseFrom: r.Dir}

			stream, res, err := extract(t, e, opt)
			must(t, err)
			if res.Header.Kind != extent.Full || !res.Created || !strings.HasPrefix(res.Header.Snapshot, rbd.SnapPrefix) {
				t.Fatalf("first backup: %+v", res)
			}
			rev1 := storeStream(t, r, stream)
			sameAsSnapshot(t, conf, r, rev1, img)

			cephtest.Rbd(t, conf, nil, "snap", "create", img.At("keep-me").String())
			writeImage(t, conf, img, 40*MiB, at(5*MiB+4*KiB, 4*KiB, 5), at(30*MiB, 100*KiB, 6), zeros(39*MiB, MiB))
			stream, res, err = extract(t, e, opt)
			must(t, err)
			if res.Header.Kind != extent.Differential || res.Header.Base != rev1.Snapshot {
				t.Fatalf("second backup: header %+v, want a diff from %s", res.Header, rev1.Snapshot)
			}
			// Only the three chunks written to appear (a new object may come
			// whole up to the end of its data: rbd's diff is that coarse).
			for _, rec := range records(t, stream) {
				if c := rec.Offset / repo.ChunkSize; c != 1 && c != 7 && c != 9 {
					t.Fatalf("second backup names %s %d+%d, in an unchanged chunk", rec.Type, rec.Offset, rec.Length)
				}
			}
			rev2 := storeStream(t, r, stream)
			sameAsSnapshot(t, conf, r, rev2, img)

			writeImage(t, conf, img, 40*MiB, at(12*MiB, 10, 7))
			opt.WholeObject = true
			stream, res, err = extract(t, e, opt)
			must(t, err)
			h, sum := header(t, stream)
			if h.Kind != extent.Differential || h.Base != rev2.Snapshot || sum.DataBytes != 4*MiB {
				t.Fatalf("whole-object backup: header %+v, %d data bytes, want one whole object", h, sum.DataBytes)
			}
			rev3 := storeStream(t, r, stream)
			sameAsSnapshot(t, conf, r, rev3, img)
			if !slices.Equal(res.Removed, []string{rev1.Snapshot}) {
				t.Fatalf("removed %v, want only %s", res.Removed, rev1.Snapshot)
			}
			if got := snapNames(t, e, img); !slices.Equal(got, []string{"keep-me", rev2.Snapshot, rev3.Snapshot}) {
				t.Fatalf("snapshots after clean-up: %v", got)
			}
		})
	}
}

// The image grows between two backups, then shrinks (to a size that cuts
// a chunk) before the next.
func TestCephGrowAndShrink(t *testing.T) {
	conf := cephtest.Start(t)
	for _, e := range engines(t, conf) {
		t.Run(e.Name(), func(t *testing.T) {
			img := newImage(t, conf, "resize-"+e.Name(), 12*MiB)
			writeImage(t, conf, img, 12*MiB, at(MiB, MiB, 1), at(9*MiB, 3*MiB, 2))
			r := newRepo(t)
			opt := rbd.Options{Image: img, BaseFrom: r.Dir}
			stream, _, err := extract(t, e, opt)
			must(t, err)
			sameAsSnapshot(t, conf, r, storeStream(t, r, stream), img)

			writeImage(t, conf, img, 22*MiB, at(18*MiB, MiB, 3))
			stream, res, err := extract(t, e, opt)
			must(t, err)
			if res.Header.Kind != extent.Differential || res.Header.Size != 22*MiB {
				t.Fatalf("after growing: %+v", res.Header)
			}
			sameAsSnapshot(t, conf, r, storeStream(t, r, stream), img)

			cephtest.Rbd(t, conf, nil, "resize", "--no-progress", "--allow-shrink", "--size", "6656K", img.Spec())
			writeImage(t, conf, img, 6656*KiB, at(2*MiB, 10, 4))
			stream, res, err = extract(t, e, opt)
			must(t, err)
			if res.Header.Kind != extent.Differential || res.Header.Size != 6656*KiB {
				t.Fatalf("after shrinking: %+v", res.Header)
			}
			sameAsSnapshot(t, conf, r, storeStream(t, r, stream), img)
		})
	}
}

// When the base snapshot is gone, or the newest revision distrusted, a
// full backup follows, and backy-store takes it.
func TestCephMissingBaseGivesFullBackup(t *testing.T) {
	conf := cephtest.Start(t)
	for _, e := range engines(t, conf) {
		t.Run(e.Name(), func(t *testing.T) {
			img := newImage(t, conf, "nobase-"+e.Name(), 8*MiB)
			writeImage(t, conf, img, 8*MiB, at(0, MiB, 1))
			r := newRepo(t)
			opt := rbd.Options{Image: img, BaseFrom: r.Dir}
			stream, _, err := extract(t, e, opt)
			must(t, err)
			rev1 := storeStream(t, r, stream)
			cephtest.Rbd(t, conf, nil, "snap", "rm", "--no-progress", img.At(rev1.Snapshot).String())
			writeImage(t, conf, img, 8*MiB, at(5*MiB, 10, 2))
			log, lines := logtest.New()
			opt.Log = log
			stream, res, err := extract(t, e, opt)
			must(t, err)
			if notes := lines.All(); res.Header.Kind != extent.Full || len(notes) == 0 || !strings.Contains(notes[0], "no longer exists") {
				t.Fatalf("header %+v, notes %q: want a full stream", res.Header, notes)
			}
			rev2 := storeStream(t, r, stream)
			sameAsSnapshot(t, conf, r, rev2, img)

			rev2.Trust = repo.Distrusted
			must(t, r.SaveRevision(rev2))
			stream, res, err = extract(t, e, opt)
			must(t, err)
			if res.Header.Kind != extent.Full {
				t.Fatalf("distrusted parent: header %+v, want a full stream", res.Header)
			}
			sameAsSnapshot(t, conf, r, storeStream(t, r, stream), img)
		})
	}
}

// A pool or image that does not exist is ErrNotFound, before anything is
// written or made.
func TestCephNotFound(t *testing.T) {
	conf := cephtest.Start(t)
	for _, e := range engines(t, conf) {
		for _, img := range []rbd.Image{{Pool: "nopool", Name: "x"}, {Pool: "rbd", Name: "nosuchimage"}, {Pool: "rbd", Name: "nosuchimage", Snap: "s"}} {
			stream, _, err := extract(t, e, rbd.Options{Image: img})
			if !errors.Is(err, rbd.ErrNotFound) || len(stream) > 0 {
				t.Errorf("%s %s: error %v and %d bytes, want ErrNotFound and nothing", e.Name(), img, err, len(stream))
			}
		}
	}
}

// fakeRbd writes a wrapper around the real rbd whose export-diff runs the
// shell code body with the real output on stdin; other commands run as is.
func fakeRbd(t *testing.T, body string) string {
	t.Helper()
	script := "#!/bin/sh\ncase \" $* \" in\n*\" export-diff \"*)\n\trbd \"$@\" | { " + body + "; }\n\t;;\n*) exec rbd \"$@\" ;;\nesac\n"
	p := filepath.Join(t.TempDir(), "rbd")
	must(t, os.WriteFile(p, []byte(script), 0o755))
	return p
}

// rbd export-diff dying mid-stream, or failing after a complete diff,
// gives no END record, no revision, and no new snapshot.
func TestCephExportDiffFailure(t *testing.T) {
	conf := cephtest.Start(t)
	img := newImage(t, conf, "killed", 16*MiB)
	writeImage(t, conf, img, 16*MiB, at(0, 16*MiB, 1))
	cli := rbd.NewCLI(rbd.Conn{Conf: conf})
	before := snapNames(t, cli, img)
	for name, body := range map[string]string{
		"killed after 5 MiB":   "head -c 5242880; kill -KILL $$",
		"fails after its end":  "cat; exit 3",
		"killed before output": "kill -KILL $$",
	} {
		cli.Command = fakeRbd(t, body)
		r := newRepo(t)
		stream, _, err := extract(t, cli, rbd.Options{Image: img, BaseFrom: r.Dir})
		if !errors.Is(err, rbd.ErrCommand) {
			t.Errorf("%s: error %v, want a failed rbd command", name, err)
		}
		if _, serr := store.Store(context.Background(), r, bytes.NewReader(stream), store.Options{}); serr == nil {
			t.Errorf("%s: backy-store made a revision of the stream", name)
		}
		if revs, _ := r.Revisions(); len(revs) > 0 {
			t.Errorf("%s: %d revisions", name, len(revs))
		}
		if got := snapNames(t, cli, img); !slices.Equal(got, before) {
			t.Errorf("%s: snapshots %v, want %v", name, got, before)
		}
	}
}

// Restores into Ceph through pipes: raw into rbd import, and an rbd diff
// into rbd import-diff onto an image that holds other data and has another
// size; rbd export of both gives the revision back.
func TestCephRestoreIntoCeph(t *testing.T) {
	conf := cephtest.Start(t)
	img := newImage(t, conf, "source", 14*MiB)
	writeImage(t, conf, img, 14*MiB, at(100, 5000, 1), at(6*MiB, 2*MiB, 2), at(13*MiB, MiB, 3))
	r := newRepo(t)
	stream, _, err := extract(t, rbd.NewCLI(rbd.Conn{Conf: conf}), rbd.Options{Image: img})
	must(t, err)
	rev := storeStream(t, r, stream)
	ix, err := r.Index(rev.ID)
	must(t, err)
	want := restored(t, r, rev)

	pipeInto := func(fn func(w io.Writer) error, args ...string) {
		t.Helper()
		pr, pw := io.Pipe()
		go func() { pw.CloseWithError(fn(pw)) }()
		cephtest.Rbd(t, conf, pr, args...)
	}
	raw := rbd.Image{Pool: "rbd", Name: "restored-raw"}
	pipeInto(func(w io.Writer) error {
		return restore.Raw(context.Background(), r, rev, ix, w, restore.Options{})
	}, "import", "--no-progress", "-", raw.Spec())
	if got := export(t, conf, raw); !bytes.Equal(got, want) {
		t.Fatalf("rbd import of the raw restore differs at %s", firstDiff(got, want))
	}

	target := newImage(t, conf, "restored-diff", 20*MiB)
	writeImage(t, conf, target, 20*MiB, at(0, 20*MiB, 9)) // old data everywhere
	pipeInto(func(w io.Writer) error {
		return restore.RBDDiff(context.Background(), r, rev, ix, w, restore.Options{})
	}, "import-diff", "--no-progress", "-", target.Spec())
	if got := export(t, conf, target); !bytes.Equal(got, want) {
		t.Fatalf("rbd import-diff of the rbd-diff restore differs at %s", firstDiff(got, want))
	}
}

// Both engines write byte-identical streams for the same snapshots: full,
// differential, whole-object, across a resize, of a clone (parent data
// included) and samples.
func TestCephEnginesIdentical(t *testing.T) {
	conf := cephtest.Start(t)
	list := engines(t, conf)
	if len(list) < 2 {
		t.Skip("needs the librbd engine: build with -tags librbd,pacific")
	}
	img := newImage(t, conf, "same", 26*MiB)
	writeImage(t, conf, img, 26*MiB, at(0, 8*KiB, 1), at(3*MiB, 2*MiB, 2),
		write{off: 12 * MiB, data: make([]byte, 4*MiB)}, at(20*MiB-1, 2, 3))
	cephtest.Rbd(t, conf, nil, "snap", "create", img.At("s1").String())
	writeImage(t, conf, img, 26*MiB, at(3*MiB+1000, 10, 4), zeros(12*MiB, MiB), at(24*MiB, MiB, 5))
	cephtest.Rbd(t, conf, nil, "snap", "create", img.At("s2").String())
	writeImage(t, conf, img, 30*MiB+512*KiB, at(29*MiB, MiB, 6))
	cephtest.Rbd(t, conf, nil, "snap", "create", img.At("s3").String())
	cephtest.Rbd(t, conf, nil, "snap", "protect", img.At("s1").String())
	clone := rbd.Image{Pool: "rbd", Name: img.Name + "-clone"}
	cephtest.Rbd(t, conf, nil, "clone", img.At("s1").String(), clone.Spec())
	writeImage(t, conf, clone, 26*MiB, at(7*MiB, 10, 7))
	cephtest.Rbd(t, conf, nil, "snap", "create", clone.At("c1").String())

	for name, opt := range map[string]rbd.Options{
		"full":               {Image: img.At("s1")},
		"diff":               {Image: img.At("s2"), FromSnap: "s1"},
		"diff whole-object":  {Image: img.At("s2"), FromSnap: "s1", WholeObject: true},
		"diff across grow":   {Image: img.At("s3"), FromSnap: "s2"},
		"full whole-object":  {Image: img.At("s3"), WholeObject: true},
		"clone full":         {Image: clone.At("c1")},
		"clone whole-object": {Image: clone.At("c1"), WholeObject: true},
		"sample all":         {Image: img.At("s3"), Sample: 100},
		"sample 10%":         {Image: img.At("s3"), Sample: 10, Seed: 3},
	} {
		var streams [][]byte
		for _, e := range list {
			stream, _, err := extract(t, e, opt)
			if err != nil {
				t.Fatalf("%s, %s engine: %v", name, e.Name(), err)
			}
			streams = append(streams, stream)
		}
		t.Logf("%s: %d bytes, %d records", name, len(streams[0]), len(records(t, streams[0])))
		if opt.FromSnap == "" && opt.Sample == 0 {
			r := newRepo(t)
			sameAsSnapshot(t, conf, r, storeStream(t, r, streams[0]), opt.Image.At(""))
		}
		if !bytes.Equal(streams[0], streams[1]) {
			t.Errorf("%s: the engines' streams differ (%d and %d bytes):\ncli:    %v\nlibrbd: %v", name,
				len(streams[0]), len(streams[1]), records(t, streams[0]), records(t, streams[1]))
		}
	}
}
