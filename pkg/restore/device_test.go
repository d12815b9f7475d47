package restore_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/backy/backy/pkg/restore"
)

// garbageDevice makes a backing file of size bytes of 0xaa and attaches it
// to a loop device; it returns the device, the file and its old content.
func garbageDevice(t *testing.T, size int) (dev, backing string, old []byte) {
	t.Helper()
	backing = filepath.Join(t.TempDir(), "disk")
	old = bytes.Repeat([]byte{0xaa}, size)
	if err := os.WriteFile(backing, old, 0o644); err != nil {
		t.Fatal(err)
	}
	return loopDevice(t, backing), backing, old
}

// loopDevice attaches backing to a free loop device, or skips the test where
// that is impossible (not root, no loop devices in this container).
func loopDevice(t *testing.T, backing string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("block device restore needs root for losetup")
	}
	out, err := exec.Command("losetup", "-f", "--show", backing).Output()
	if err != nil {
		t.Skipf("no loop device: losetup: %v", err)
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() { exec.Command("losetup", "-d", dev).Run() })
	return dev
}

// deviceReads is the count of completed reads of a block device.
func deviceReads(t *testing.T, dev string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("/sys/block", filepath.Base(dev), "stat"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.Fields(string(b))[0]
}

// TestToDevice restores onto a loop device whose old content is garbage:
// data chunks are written, zero chunks and zero pages are zeroed, the bytes
// past the image are left alone, and the device is never read.
func TestToDevice(t *testing.T) {
	img := pagedImage(8192 + 512) // a device holds whole sectors, not always pages
	r, rev, ix := storeImage(t, img)
	dev, _, old := garbageDevice(t, 4*chunk)
	reads := deviceReads(t, dev)
	if err := restore.ToPath(context.Background(), r, rev, ix, dev, restore.Options{}); err != nil {
		t.Fatal(err)
	}
	if got := deviceReads(t, dev); got != reads {
		t.Errorf("the device was read during the restore: %s reads before, %s after", reads, got)
	}
	f, err := os.Open(dev)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got := make([]byte, 4*chunk)
	if _, err := f.ReadAt(got, 0); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got[:len(img)], img) {
		t.Error("the device does not hold the image")
	}
	if !bytes.Equal(got[len(img):], old[len(img):]) {
		t.Error("bytes past the image were changed")
	}
}

func TestToDeviceTooSmall(t *testing.T) {
	img := pagedImage(8192)
	r, rev, ix := storeImage(t, img)
	dev, backing, old := garbageDevice(t, 3*chunk)
	err := restore.ToPath(context.Background(), r, rev, ix, dev, restore.Options{})
	if !errors.Is(err, restore.ErrTargetTooSmall) {
		t.Fatalf("error %v, want %v", err, restore.ErrTargetTooSmall)
	}
	exec.Command("losetup", "-d", dev).Run()
	if got, _ := os.ReadFile(backing); !bytes.Equal(got, old) {
		t.Error("the too small device was written to")
	}
}

// TestToDeviceInterrupted: an interrupted restore onto a device stops before
// it zeroes or writes anything, and says why.
func TestToDeviceInterrupted(t *testing.T) {
	img := pagedImage(8192)
	r, rev, ix := storeImage(t, img)
	dev, backing, old := garbageDevice(t, 4*chunk)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := restore.ToPath(ctx, r, rev, ix, dev, restore.Options{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want %v", err, context.Canceled)
	}
	exec.Command("losetup", "-d", dev).Run()
	if got, _ := os.ReadFile(backing); !bytes.Equal(got, old) {
		t.Error("the device was written to after the interrupt")
	}
}
