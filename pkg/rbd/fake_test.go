package rbd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/backy/backy/pkg/extent"
)

// fakeEngine is an in-memory cluster of one pool, for testing Backup's
// decisions without Ceph. Its diff compares snapshots in 64 KiB pieces.
type fakeEngine struct {
	images map[string]*fakeImage
	nextID uint64
	failAt int // Diff fails after this many data pieces when > 0
	// onCreate, when set, is called when CreateSnapshot starts, and
	// onDiff when Diff starts: what other runs do meanwhile.
	onCreate, onDiff func()
	calls            []string
	removed          []string
}

type fakeImage struct {
	head  []byte
	snaps []fakeSnap
}

type fakeSnap struct {
	Snap
	data []byte
}

var errInjected = errors.New("injected failure")

func newFake() *fakeEngine { return &fakeEngine{images: map[string]*fakeImage{}, nextID: 1} }

func (f *fakeEngine) image(img Image) (*fakeImage, error) {
	if img.Pool != "rbd" {
		return nil, fmt.Errorf("%w: pool %s", ErrNotFound, img.Pool)
	}
	i := f.images[img.Name]
	if i == nil {
		return nil, fmt.Errorf("%w: image %s", ErrNotFound, img.Spec())
	}
	return i, nil
}

func (f *fakeEngine) snap(img Image) (*fakeSnap, error) {
	i, err := f.image(img)
	if err != nil {
		return nil, err
	}
	for k := range i.snaps {
		if i.snaps[k].Name == img.Snap {
			return &i.snaps[k], nil
		}
	}
	return nil, fmt.Errorf("%w: %s", ErrNotFound, img)
}

func (f *fakeEngine) Name() string { return "fake" }
func (f *fakeEngine) Close() error { return nil }

func (f *fakeEngine) Snapshots(ctx context.Context, img Image) ([]Snap, error) {
	i, err := f.image(img)
	if err != nil {
		return nil, err
	}
	var s []Snap
	for _, x := range i.snaps {
		s = append(s, x.Snap)
	}
	return s, nil
}

func (f *fakeEngine) CreateSnapshot(ctx context.Context, img Image) error {
	if f.onCreate != nil {
		f.onCreate()
	}
	f.calls = append(f.calls, "create "+img.Snap)
	i, err := f.image(img)
	if err != nil {
		return err
	}
	i.snaps = append(i.snaps, fakeSnap{Snap{f.nextID, img.Snap}, slices.Clone(i.head)})
	f.nextID++
	return nil
}

func (f *fakeEngine) RemoveSnapshot(ctx context.Context, img Image) error {
	f.calls = append(f.calls, "remove "+img.Snap)
	i, err := f.image(img)
	if err != nil {
		return err
	}
	n := len(i.snaps)
	i.snaps = slices.DeleteFunc(i.snaps, func(s fakeSnap) bool { return s.Name == img.Snap })
	if len(i.snaps) == n {
		return fmt.Errorf("%w: %s", ErrNotFound, img)
	}
	f.removed = append(f.removed, img.Snap)
	return nil
}

func (f *fakeEngine) Diff(ctx context.Context, req DiffRequest, sink Sink) error {
	if f.onDiff != nil {
		f.onDiff()
	}
	to, err := f.snap(req.Image)
	if err != nil {
		return err
	}
	var from []byte
	if req.From != "" {
		s, err := f.snap(req.Image.At(req.From))
		if err != nil {
			return err
		}
		from = s.data
	}
	if err := sink.Begin(int64(len(to.data))); err != nil {
		return err
	}
	const piece = 64 << 10
	pieces := 0
	for off := 0; off < len(to.data); off += piece {
		p := to.data[off:min(off+piece, len(to.data))]
		var old []byte
		if off < len(from) {
			old = from[off:min(off+len(p), len(from))]
		}
		if bytes.Equal(p, old) || req.From == "" && extent.IsZero(p) {
			continue
		}
		if pieces++; f.failAt > 0 && pieces > f.failAt {
			return errInjected
		}
		if err := sink.Data(int64(off), p); err != nil {
			return err
		}
	}
	return nil
}
