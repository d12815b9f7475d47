package quiesce_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/backy/backy/internal/freezetest"
	"github.com/backy/backy/pkg/quiesce"
)

// The test binary is also the helper (quiesce.HelperMain) and qemu-ga's
// namespace builder (freezetest.MaybeChild).
func TestMain(m *testing.M) {
	if os.Getenv(quiesce.HelperEnv) != "" {
		os.Exit(quiesce.HelperMain())
	}
	freezetest.MaybeChild()
	os.Exit(m.Run())
}

// fakeSnap is a snapshot as a file: Create makes it exclusively, as rbd
// refuses a snapshot name that exists. onCreate runs before it is made.
type fakeSnap struct {
	path     string
	onCreate func()
	delay    time.Duration
	mu       sync.Mutex
	creates  int
}

func (f *fakeSnap) Create(ctx context.Context) error {
	f.mu.Lock()
	f.creates++
	f.mu.Unlock()
	if f.onCreate != nil {
		f.onCreate()
	}
	select {
	case <-time.After(f.delay):
	case <-ctx.Done():
		return ctx.Err()
	}
	fh, err := os.OpenFile(f.path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	return fh.Close()
}

func (f *fakeSnap) Exists(ctx context.Context) (bool, error) {
	_, err := os.Stat(f.path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

func (f *fakeSnap) Remove(ctx context.Context) error { return os.Remove(f.path) }

func newSnap(t *testing.T) *fakeSnap {
	return &fakeSnap{path: filepath.Join(t.TempDir(), "backy-snap")}
}
