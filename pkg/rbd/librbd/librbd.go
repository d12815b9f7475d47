//go:build librbd

package librbd

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/backy/backy/pkg/cephconn"
	"github.com/backy/backy/pkg/rbd"
	"github.com/ceph/go-ceph/rados"
	cephrbd "github.com/ceph/go-ceph/rbd"
)

// Available reports whether this build has the librbd engine.
const Available = true

// Readers is the number of reads the engine keeps in flight.
const Readers = 4

type engine struct {
	conn *rados.Conn
	mu   sync.Mutex
	pool map[string]*rados.IOContext
}

// New connects to the cluster (cephconn.Connect: cancelling ctx abandons a
// connection attempt still waiting for a monitor).
func New(ctx context.Context, c rbd.Conn) (rbd.Engine, error) {
	conn, err := cephconn.Connect(ctx, c)
	if err != nil {
		return nil, err
	}
	return &engine{conn: conn, pool: map[string]*rados.IOContext{}}, nil
}

func (e *engine) Name() string { return "librbd" }

func (e *engine) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, io := range e.pool {
		io.Destroy()
	}
	e.pool = nil
	e.conn.Shutdown()
	return nil
}

func (e *engine) ioctx(pool string) (*rados.IOContext, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if io := e.pool[pool]; io != nil {
		return io, nil
	}
	io, err := e.conn.OpenIOContext(pool)
	if errors.Is(err, rados.ErrNotFound) {
		return nil, fmt.Errorf("%w: pool %s", rbd.ErrNotFound, pool)
	}
	if err != nil {
		return nil, fmt.Errorf("rbd: pool %s: %w", pool, err)
	}
	e.pool[pool] = io
	return io, nil
}

// open opens img (at its snapshot, if any), read-only unless rw.
func (e *engine) open(img rbd.Image, rw bool) (*cephrbd.Image, error) {
	io, err := e.ioctx(img.Pool)
	if err != nil {
		return nil, err
	}
	var h *cephrbd.Image
	if rw {
		h, err = cephrbd.OpenImage(io, img.Name, img.Snap)
	} else {
		h, err = cephrbd.OpenImageReadOnly(io, img.Name, img.Snap)
	}
	if errors.Is(err, cephrbd.ErrNotFound) {
		return nil, fmt.Errorf("%w: image %s", rbd.ErrNotFound, img)
	}
	if err != nil {
		return nil, fmt.Errorf("rbd: opening %s: %w", img, err)
	}
	return h, nil
}

func (e *engine) Snapshots(ctx context.Context, img rbd.Image) ([]rbd.Snap, error) {
	h, err := e.open(rbd.Image{Pool: img.Pool, Name: img.Name}, false)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	infos, err := h.GetSnapshotNames()
	if err != nil {
		return nil, fmt.Errorf("rbd: listing snapshots of %s: %w", img.Spec(), err)
	}
	snaps := make([]rbd.Snap, len(infos))
	for i, s := range infos {
		snaps[i] = rbd.Snap{ID: s.Id, Name: s.Name}
	}
	slices.SortFunc(snaps, func(a, b rbd.Snap) int { return cmp.Compare(a.ID, b.ID) })
	return snaps, nil
}

func (e *engine) CreateSnapshot(ctx context.Context, img rbd.Image) error {
	h, err := e.open(rbd.Image{Pool: img.Pool, Name: img.Name}, true)
	if err != nil {
		return err
	}
	defer h.Close()
	_, err = h.CreateSnapshot(img.Snap)
	if errors.Is(err, cephrbd.ErrExist) {
		return fmt.Errorf("%w: %s", rbd.ErrSnapExists, img)
	}
	if err != nil {
		return fmt.Errorf("rbd: creating snapshot %s: %w", img, err)
	}
	return nil
}

func (e *engine) RemoveSnapshot(ctx context.Context, img rbd.Image) error {
	h, err := e.open(rbd.Image{Pool: img.Pool, Name: img.Name}, true)
	if err != nil {
		return err
	}
	defer h.Close()
	err = h.GetSnapshot(img.Snap).Remove()
	if errors.Is(err, cephrbd.ErrNotFound) {
		return fmt.Errorf("%w: snapshot %s", rbd.ErrNotFound, img)
	}
	if err != nil {
		return fmt.Errorf("rbd: removing snapshot %s: %w", img, err)
	}
	return nil
}
