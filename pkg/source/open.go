package source

import (
	"context"
	"fmt"
	"io"
	"os"
	"unsafe"

	"github.com/backy/backy/pkg/fifo"
	"github.com/backy/backy/pkg/fsperm"

	"golang.org/x/sys/unix"
)

// image is an opened source with a known size.
type image struct {
	f        *os.File
	name     string // for the stream header and messages
	size     int64
	seekable bool // regular file or block device: ReadAt and SEEK_DATA work
	regular  bool
	pos      int64 // pipes: bytes consumed so far
}

// openImage opens path ("-" is stdin). For a pipe on stdin, size must be
// given; for files and devices it must be 0 or the true size. ctx ends the
// wait for a FIFO's writer (fifo.Open).
func openImage(ctx context.Context, path string, stdin *os.File, size int64) (*image, error) {
	f, name := stdin, "stdin"
	if path != "-" {
		var err error
		if f, err = fifo.Open(ctx, path); err != nil {
			return nil, fmt.Errorf("source: %w", err)
		}
		name = path
	}
	img, err := probe(f, name, size)
	if err != nil {
		if path != "-" {
			f.Close()
		}
		return nil, err
	}
	return img, nil
}

func probe(f *os.File, name string, size int64) (*image, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("source: %w", err)
	}
	img := &image{f: f, name: name}
	switch mode := st.Mode(); {
	case mode.IsDir():
		return nil, fmt.Errorf("%w: %s is a directory", ErrNotImage, name)
	case mode.IsRegular():
		img.size, img.seekable, img.regular = st.Size(), true, true
	case fsperm.IsBlockDevice(mode):
		if img.size, err = blockDeviceSize(f); err != nil {
			return nil, fmt.Errorf("source: %s: %w", name, err)
		}
		img.seekable = true
	case mode&os.ModeNamedPipe != 0 || mode&os.ModeCharDevice != 0 || mode&os.ModeSocket != 0:
		if size <= 0 {
			return nil, fmt.Errorf("%w: cannot tell the size of %s", ErrSizeNeeded, name)
		}
		img.size = size
		return img, nil
	default:
		return nil, fmt.Errorf("%w: %s", ErrNotImage, name)
	}
	if size > 0 && size != img.size {
		return nil, fmt.Errorf("%w: %s has %d bytes, --size says %d", ErrSizeMismatch, name, img.size, size)
	}
	if img.size == 0 {
		// A block device with nothing behind it (a loop or nbd device not
		// attached, a disconnected volume) says 0 bytes: that is no disk
		// image, and a complete empty revision would pass for a backup.
		return nil, fmt.Errorf("%w: %s has 0 bytes: nothing to back up", ErrNotImage, name)
	}
	advise(f)
	return img, nil
}

// blockDeviceSize asks the kernel for the size of a block device.
func blockDeviceSize(f *os.File) (int64, error) {
	var size uint64
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), unix.BLKGETSIZE64, uintptr(unsafe.Pointer(&size)))
	if errno != 0 {
		return 0, fmt.Errorf("BLKGETSIZE64: %w", errno)
	}
	return int64(size), nil
}

// advise tells the kernel the image is read once, front to back, so it
// reads ahead. NOREUSE asks it not to keep the pages at the expense of the
// VMs, a hint only: Linux 6.18 here kept a whole 1 GiB image cached after
// a full read, as after cat (fincore, 2026-12-03).
func advise(f *os.File) {
	fd := int(f.Fd())
	_ = unix.Fadvise(fd, 0, 0, unix.FADV_SEQUENTIAL)
	_ = unix.Fadvise(fd, 0, 0, unix.FADV_NOREUSE)
}

// dataRegions calls fn for every region of the file that may hold data,
// using SEEK_DATA/SEEK_HOLE; a file system without them reports one region.
func (img *image) dataRegions(fn func(off, end int64) error) error {
	if !img.regular {
		if img.size == 0 {
			return nil
		}
		return fn(0, img.size)
	}
	fd := int(img.f.Fd())
	for off := int64(0); off < img.size; {
		data, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if err == unix.ENXIO {
			return nil // only a hole up to the end
		}
		if err != nil {
			return fn(off, img.size) // no SEEK_DATA support: read it all
		}
		if data >= img.size {
			return nil
		}
		hole, err := unix.Seek(fd, data, unix.SEEK_HOLE)
		if err != nil || hole > img.size {
			hole = img.size
		}
		if err := fn(data, hole); err != nil {
			return err
		}
		off = hole
	}
	return nil
}

// isHole reports whether [off, end) of a regular file is known to hold no
// data (SEEK_DATA finds none before end); false when it cannot tell.
func (img *image) isHole(off, end int64) bool {
	data, err := unix.Seek(int(img.f.Fd()), off, unix.SEEK_DATA)
	if err == unix.ENXIO {
		return true // only a hole up to the end
	}
	return err == nil && data >= end
}

// readFull reads exactly len(p) bytes at off (or sequentially for pipes).
func (img *image) readFull(p []byte, off int64) error {
	var n int
	var err error
	if img.seekable {
		n, err = img.f.ReadAt(p, off)
	} else {
		n, err = io.ReadFull(img.f, p)
	}
	if n == len(p) {
		return nil
	}
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		if img.seekable {
			return fmt.Errorf("%w: %s ended at byte %d, expected %d", ErrShrunk, img.name, off+int64(n), img.size)
		}
		return fmt.Errorf("%w: %s ended at byte %d, --size says %d", ErrSizeMismatch, img.name, off+int64(n), img.size)
	}
	return fmt.Errorf("source: read %s at %d: %w", img.name, off+int64(n), err)
}

// checkUnchangedSize fails if the image shrank during the read, which would
// make the stream a mix of two states.
func (img *image) checkUnchangedSize() error {
	if !img.seekable {
		var one [1]byte
		if n, _ := img.f.Read(one[:]); n > 0 {
			return fmt.Errorf("%w: %s has more than %d bytes", ErrSizeMismatch, img.name, img.size)
		}
		return nil
	}
	size := img.size
	if img.regular {
		st, err := img.f.Stat()
		if err != nil {
			return fmt.Errorf("source: %w", err)
		}
		size = st.Size()
	}
	if size < img.size {
		return fmt.Errorf("%w: %s now has %d bytes, had %d", ErrShrunk, img.name, size, img.size)
	}
	return nil
}
