package upkeep_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/backy/backy/pkg/extent"
	"github.com/backy/backy/pkg/repo"
	"github.com/backy/backy/pkg/upkeep"
)

func against(t *testing.T, r *repo.Repo, spec string, in io.Reader, timeout time.Duration) (*upkeep.AgainstResult, *logger, error) {
	t.Helper()
	log := newLogger()
	res, err := upkeep.VerifyAgainst(context.Background(), r, in, upkeep.AgainstOptions{
		Options: upkeep.Options{Log: log.log}, Spec: spec, Timeout: timeout})
	return res, log, err
}

func TestAgainstMatchingSample(t *testing.T) {
	r := newRepo(t)
	img := image(12, 3, 4, 5)
	img = img[:len(img)-1000] // odd size: the last block is short
	rev := storeAt(t, r, fullStream(t, img, ""), time.Time{})
	for _, pct := range []float64{5, 50, 100} {
		res, log, err := against(t, r, "", bytes.NewReader(sampleOf(t, img, pct)), time.Minute)
		if err != nil {
			t.Fatalf("%v%%: %v\n%s", pct, err, log)
		}
		if !res.Verified || res.Complete != (pct == 100) || res.Records == 0 {
			t.Errorf("%v%%: %+v", pct, res)
		}
	}
	if got := load(t, r, rev.ID); got.Trust != repo.Verified || got.VerifiedAt == nil {
		t.Errorf("trust %s", got.Trust)
	}
}

func TestAgainstMismatch(t *testing.T) {
	r := newRepo(t)
	img := image(6, 3, 2)
	rev := storeAt(t, r, fullStream(t, img, ""), time.Time{})
	changed := append([]byte(nil), img...)
	changed[chunk+12345] ^= 1     // data differs
	changed[2*chunk+7] = 9        // a zero chunk is no longer zero
	changed[5*chunk+chunk-1] ^= 2 // last byte
	before := load(t, r, rev.ID)
	res, log, err := against(t, r, rev.ID[:5], bytes.NewReader(sampleOf(t, changed, 100)), 0)
	if !errors.Is(err, upkeep.ErrMismatch) {
		t.Fatalf("error %v", err)
	}
	if want := fmt.Sprintf("upkeep: revision does not match the stream: revision %s differs in 3 ranges, the first at offset %d", rev.ID, chunk); err.Error() != want {
		t.Errorf("error %q\nwant  %q", err, want)
	}
	wantLines := []string{
		fmt.Sprintf("revision %s: offset %d: the %d bytes there differ from the stream, the first at %d", rev.ID, chunk, chunk, chunk+12345),
		fmt.Sprintf("revision %s: offset %d: the %d bytes there differ from the stream, the first at %d", rev.ID, 2*chunk, chunk, 2*chunk+7),
		fmt.Sprintf("revision %s: offset %d: the %d bytes there differ from the stream, the first at %d", rev.ID, 5*chunk, chunk, 6*chunk-1),
	}
	if got := log.String(); got != strings.Join(wantLines, "\n") {
		t.Errorf("report:\n%s\nwant:\n%s", got, strings.Join(wantLines, "\n"))
	}
	got := load(t, r, rev.ID)
	if got.Trust != repo.Distrusted || len(got.Damage) != 3 || res.Verified {
		t.Errorf("trust %s damage %q (was %s)", got.Trust, got.Damage, before.Trust)
	}
}

func TestAgainstOtherSizeIsMismatch(t *testing.T) {
	r := newRepo(t)
	img := image(3, 3)
	rev := storeAt(t, r, fullStream(t, img, ""), time.Time{})
	_, _, err := against(t, r, "", bytes.NewReader(sampleOf(t, img[:len(img)-chunk], 100)), 0)
	if !errors.Is(err, upkeep.ErrMismatch) {
		t.Fatalf("error %v", err)
	}
	got := load(t, r, rev.ID)
	if got.Trust != repo.Distrusted || !strings.Contains(got.Damage[0], "image size differs: the stream has 8388608 bytes, the revision 12582912") {
		t.Errorf("trust %s damage %q", got.Trust, got.Damage)
	}
}

func TestAgainstTimeoutIsAFailure(t *testing.T) {
	r := newRepo(t)
	img := image(2, 3)
	rev := storeAt(t, r, fullStream(t, img, ""), time.Time{})
	before := snapshot(t, r.Dir)
	// A source that sends half a stream and then hangs.
	pr, pw := io.Pipe()
	defer pw.Close()
	stream := sampleOf(t, img, 100)
	go pw.Write(stream[:len(stream)/2])
	start := time.Now()
	_, _, err := against(t, r, "", pr, 200*time.Millisecond)
	if !errors.Is(err, upkeep.ErrTimeout) {
		t.Fatalf("error %v, want ErrTimeout", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("returned after %v", d)
	}
	sameFiles(t, before, snapshot(t, r.Dir))
	if got := load(t, r, rev.ID); got.Trust != repo.Trusted {
		t.Errorf("trust %s after a timeout", got.Trust)
	}
}

func TestAgainstBadStreamChangesNothing(t *testing.T) {
	r := newRepo(t)
	img := image(3, 3)
	storeAt(t, r, fullStream(t, img, "s1"), time.Time{})
	good := sampleOf(t, img, 100)
	other := append([]byte(nil), img...)
	other[5] ^= 1
	var diff bytes.Buffer
	w, _ := extent.NewWriter(&diff, extent.Header{Kind: extent.Differential, Size: int64(len(img)), Base: "s1", Snapshot: "s2"})
	w.Close()
	for name, c := range map[string]struct {
		stream []byte
		want   error
	}{
		"truncated":                {good[:len(good)-3], io.ErrUnexpectedEOF},
		"truncated mismatch":       {sampleOf(t, other, 100)[:chunk], io.ErrUnexpectedEOF},
		"not a stream":             {[]byte("hello, world, this is not a stream"), extent.ErrBadMagic},
		"differential":             {diff.Bytes(), upkeep.ErrStreamKind},
		"trailing bytes after end": {append(append([]byte(nil), good...), 0), extent.ErrTrailingData},
	} {
		t.Run(name, func(t *testing.T) {
			before := snapshot(t, r.Dir)
			_, _, err := against(t, r, "", bytes.NewReader(c.stream), 0)
			if !errors.Is(err, c.want) {
				t.Fatalf("error %v, want %v", err, c.want)
			}
			sameFiles(t, before, snapshot(t, r.Dir))
		})
	}
}

func TestAgainstDistrustedRevision(t *testing.T) {
	r := newRepo(t)
	img := image(8, 3)
	rev := storeAt(t, r, fullStream(t, img, ""), time.Time{})
	upkeep.Distrust(r, upkeep.Selection{})
	res, log, err := against(t, r, "", bytes.NewReader(sampleOf(t, img, 20)), 0)
	if err != nil || res.Verified {
		t.Fatalf("error %v, %+v", err, res)
	}
	if !strings.Contains(log.String(), "stays distrusted") || load(t, r, rev.ID).Trust != repo.Distrusted {
		t.Fatalf("a sample cleared a distrusted revision:\n%s", log)
	}
	if _, _, err := against(t, r, "", bytes.NewReader(fullStream(t, img, "")), 0); err != nil {
		t.Fatal(err)
	}
	if got := load(t, r, rev.ID); got.Trust != repo.Verified {
		t.Fatalf("a full match left it %s", got.Trust)
	}
}

func TestAgainstMissingChunkIsMismatch(t *testing.T) {
	r := newRepo(t)
	img := image(3, 3)
	rev := storeAt(t, r, fullStream(t, img, ""), time.Time{})
	p, h := chunkPath(t, r, rev.ID, 1)
	corrupt(t, p)
	_, _, err := against(t, r, "", bytes.NewReader(sampleOf(t, img, 100)), 0)
	if !errors.Is(err, upkeep.ErrMismatch) {
		t.Fatalf("error %v", err)
	}
	if d := load(t, r, rev.ID).Damage; len(d) != 1 || d[0] != fmt.Sprintf("offset %d: repo: corrupt chunk %s: content does not match its hash", chunk, h) {
		t.Errorf("damage %q", d)
	}
}
