package rbddiff

import (
	"bytes"
	"encoding/binary"
	"flag"
	"fmt"
	"github.com/backy/backy/internal/pattern"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/backy/backy/pkg/rbd/cephtest"
)

// The tests named TestCeph* run against a real cluster (package cephtest);
// they are skipped when Ceph is not installed and BACKY_REQUIRE_CEPH is unset.

var update = flag.Bool("update", false, "recapture testdata/valid/rbd-*.bin from the test cluster")

func TestMain(m *testing.M) { os.Exit(cephtest.Main(m)) }

// op is one data record to write.
type op struct {
	off  uint64
	data []byte // nil: a zero record of length n
	n    uint64
}

func zero(off, n uint64) op                   { return op{off: off, n: n} }
func write(off uint64, seed uint32, n int) op { return op{off: off, data: pattern.Bytes(seed, n)} }

// writeDiff encodes a diff with the Writer.
func writeDiff(t *testing.T, h Header, ops ...op) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := NewWriter(&buf)
	must(t, w.WriteHeader(&h))
	for _, o := range ops {
		if o.data != nil {
			must(t, w.WriteData(o.off, o.data))
		} else {
			must(t, w.WriteZero(o.off, o.n))
		}
	}
	must(t, w.Close())
	return buf.Bytes()
}

// apply applies a decoded diff to an image held in memory.
func apply(img []byte, d *decoded) []byte {
	if uint64(len(img)) > d.hdr.Size {
		img = img[:d.hdr.Size]
	}
	img = append(img, make([]byte, d.hdr.Size-uint64(len(img)))...)
	for i, r := range d.recs {
		if r.Type == TypeWrite {
			copy(img[r.Offset:], d.data[i])
		} else {
			clear(img[r.Offset:r.End()])
		}
	}
	return img
}

func applyBytes(t *testing.T, img, diff []byte) []byte {
	t.Helper()
	d, err := decode(bytes.NewReader(diff))
	if err != nil {
		t.Fatal(err)
	}
	return apply(bytes.Clone(img), d)
}

func checkExport(t *testing.T, conf, spec string, want []byte) {
	t.Helper()
	got := cephtest.Rbd(t, conf, nil, "export", "--no-progress", spec, "-")
	if !bytes.Equal(got, want) {
		t.Fatalf("rbd export %s: %d bytes differ from the %d expected (first difference at %d)", spec, len(got), len(want), firstDiff(got, want))
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

const mib = 1 << 20

// TestCephImportDiff writes diffs with the Writer, applies them with
// `rbd import-diff`, and compares `rbd export` with the expected image. It
// also reads real `rbd export-diff` output back between the snapshots.
func TestCephImportDiff(t *testing.T) {
	conf := cephtest.Start(t)
	img := "rbd/import-diff"
	cephtest.Rbd(t, conf, nil, "create", "--size", "1M", img)

	diffs := []struct {
		snap string
		diff []byte
	}{
		{"s1", writeDiff(t, Header{Version: 1, ToSnap: "s1", Size: 8 * mib},
			write(0, 1, 4096), write(mib+512, 2, 100000), write(4*mib-1000, 3, 2000),
			zero(6*mib, mib))},
		{"s2", writeDiff(t, Header{Version: 1, FromSnap: "s1", ToSnap: "s2", Size: 12 * mib},
			zero(0, 4096), write(4*mib-10, 4, 20), write(10*mib, 5, 70000), zero(11*mib, mib))},
		{"s3", writeDiff(t, Header{Version: 1, FromSnap: "s2", ToSnap: "s3", Size: 5 * mib},
			write(mib, 6, 4096), zero(4*mib, 4096), write(5*mib-10, 7, 10))},
	}
	var model []byte
	prev := ""
	for _, d := range diffs {
		cephtest.Rbd(t, conf, bytes.NewReader(d.diff), "import-diff", "--no-progress", "-", img)
		model = applyBytes(t, model, d.diff)
		checkExport(t, conf, img+"@"+d.snap, model)
		if prev != "" {
			// The real export-diff between the two snapshots must lead from
			// one to the other, too.
			real := cephtest.Rbd(t, conf, nil, "export-diff", "--no-progress", "--from-snap", prev, img+"@"+d.snap, "-")
			if !bytes.HasPrefix(real, []byte(MagicV1)) {
				t.Fatalf("rbd export-diff wrote %q, want a v1 banner", real[:min(len(real), 12)])
			}
			before := cephtest.Rbd(t, conf, nil, "export", "--no-progress", img+"@"+prev, "-")
			if got := applyBytes(t, before, real); !bytes.Equal(got, model) {
				t.Fatalf("export-diff %s..%s applied to %s differs at byte %d", prev, d.snap, prev, firstDiff(got, model))
			}
		}
		prev = d.snap
	}

	// A diff whose start snapshot the image lacks is refused by rbd.
	bad := writeDiff(t, Header{Version: 1, FromSnap: "nonexistent", ToSnap: "s4", Size: mib})
	if _, err := cephtest.RunRbd(conf, bytes.NewReader(bad), "import-diff", "--no-progress", "-", img); err == nil {
		t.Fatal("rbd import-diff accepted a diff from a snapshot the image lacks")
	}
}

// imageV2 wraps version 2 diffs into the image stream of
// `rbd export --export-format 2`, the only place rbd reads v2 diffs.
func imageV2(diffs ...[]byte) []byte {
	b := []byte("rbd image v2\nE")
	b = append(b, "rbd image diffs v2\n"...)
	b = binary.LittleEndian.AppendUint64(b, uint64(len(diffs)))
	for _, d := range diffs {
		b = append(b, d...)
	}
	return b
}

// splitImageV2 returns the diffs section of an image stream of
// `rbd export --export-format 2` that holds exactly one diff.
func splitImageV2(t *testing.T, b []byte) []byte {
	t.Helper()
	rest, ok := bytes.CutPrefix(b, []byte("rbd image v2\n"))
	if !ok {
		t.Fatalf("image stream starts with %q", b[:min(len(b), 13)])
	}
	for len(rest) > 0 && rest[0] != 'E' {
		if len(rest) < 9 {
			t.Fatal("truncated image header")
		}
		n := binary.LittleEndian.Uint64(rest[1:9])
		rest = rest[9+n:]
	}
	rest, ok = bytes.CutPrefix(rest[1:], []byte("rbd image diffs v2\n"))
	if !ok || len(rest) < 8 {
		t.Fatal("no diffs banner in image stream")
	}
	if n := binary.LittleEndian.Uint64(rest); n != 1 {
		t.Fatalf("image stream has %d diffs, want 1", n)
	}
	return rest[8:]
}

// TestCephImportV2 has rbd read version 2 diffs written by the Writer.
func TestCephImportV2(t *testing.T) {
	conf := cephtest.Start(t)
	img := "rbd/import-v2"
	yes := true
	d1 := writeDiff(t, Header{Version: 2, ToSnap: "s1", Protected: &yes, Size: 6 * mib},
		write(0, 11, 5000), write(4*mib-100, 12, 300), zero(5*mib, mib))
	d2 := writeDiff(t, Header{Version: 2, FromSnap: "s1", Size: 7 * mib},
		zero(0, 4096), write(6*mib, 13, 1000))
	cephtest.Rbd(t, conf, bytes.NewReader(imageV2(d1, d2)), "import", "--no-progress", "--export-format", "2", "-", img)
	s1 := applyBytes(t, nil, d1)
	checkExport(t, conf, img+"@s1", s1)
	checkExport(t, conf, img, applyBytes(t, s1, d2))
	info := string(cephtest.Rbd(t, conf, nil, "info", img+"@s1"))
	if !strings.Contains(info, "protected: True") {
		t.Fatalf("snapshot s1 not protected:\n%s", info)
	}
}

// TestCephCapture checks the real vectors in testdata against the cluster:
// it replays the scenario they were captured from, and checks that rbd still
// writes the same bytes and that they decode to the image rbd exports.
// With -update it rewrites them.
func TestCephCapture(t *testing.T) {
	conf := cephtest.Start(t)
	img := "rbd/capture"
	// Small objects keep the vectors small: rbd reports a new object's
	// extent from the object's start.
	cephtest.Rbd(t, conf, nil, "create", "--size", "1M", "--object-size", "64K", img)
	const kib = 1 << 10
	base := writeDiff(t, Header{Version: 1, ToSnap: "a", Size: 512 * kib},
		write(0, 21, 3000), write(128*kib+4096, 22, 10000), write(448*kib, 23, 4096))
	change := writeDiff(t, Header{Version: 1, FromSnap: "a", ToSnap: "b", Size: 640 * kib},
		write(512, 24, 1024), zero(128*kib, 32*kib), write(576*kib, 25, 2048))
	cephtest.Rbd(t, conf, bytes.NewReader(base), "import-diff", "--no-progress", "-", img)
	cephtest.Rbd(t, conf, bytes.NewReader(change), "import-diff", "--no-progress", "-", img)

	v1 := cephtest.Rbd(t, conf, nil, "export-diff", "--no-progress", "--from-snap", "a", img+"@b", "-")
	a := cephtest.Rbd(t, conf, nil, "export", "--no-progress", img+"@a", "-")
	b := cephtest.Rbd(t, conf, nil, "export", "--no-progress", img+"@b", "-")
	if got := applyBytes(t, a, v1); !bytes.Equal(got, b) {
		t.Fatalf("real v1 diff a..b applied to a differs from b at byte %d", firstDiff(got, b))
	}
	// A v2 diff, from the image stream of export --export-format 2 of an
	// image without snapshots.
	cephtest.Rbd(t, conf, nil, "cp", "--no-progress", "--object-size", "64K", img+"@b", "rbd/capture-flat")
	v2 := splitImageV2(t, cephtest.Rbd(t, conf, nil, "export", "--no-progress", "--export-format", "2", "rbd/capture-flat", "-"))
	if got := applyBytes(t, nil, v2); !bytes.Equal(got, b) {
		t.Fatalf("real v2 diff differs from the image at byte %d", firstDiff(got, b))
	}

	for name, got := range map[string][]byte{"rbd-export-diff-v1": v1, "rbd-export-v2": v2} {
		path := filepath.Join("testdata", "valid", name+".bin")
		if *update {
			d, err := decode(bytes.NewReader(got))
			if err != nil {
				t.Fatal(err)
			}
			must(t, os.WriteFile(path, got, 0o644))
			must(t, os.WriteFile(strings.TrimSuffix(path, ".bin")+".txt", []byte(d.text()), 0o644))
			continue
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (capture it with -update)", err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("rbd now writes %s differently from %s (%d vs %d bytes); check, then rerun with -update", name, path, len(got), len(want))
		}
	}
	if t.Failed() {
		fmt.Fprintln(os.Stderr, "hint: go test ./pkg/rbddiff -run TestCephCapture -update")
	}
}
