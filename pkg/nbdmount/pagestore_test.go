package nbdmount

import (
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"syscall"
	"testing"

	"github.com/backy/backy/pkg/repo"
)

const chunk = repo.ChunkSize

// partImage is a partition of an image: its bytes are a function of
// their offset in the image, and one chunk of the image is damaged.
type partImage struct {
	start, size int64
	damaged     int64 // chunk of the image that fails, -1 for none
	mu          sync.Mutex
	reads       int
}

func imageByte(off int64) byte { return byte(off*7 + off>>12) }

func (p *partImage) Size() int64  { return p.size }
func (p *partImage) Close() error { return nil }
func (p *partImage) ReadAt(b []byte, off int64) (int, error) {
	p.mu.Lock()
	p.reads++
	p.mu.Unlock()
	var eof error
	if off+int64(len(b)) >= p.size {
		b, eof = b[:p.size-off], io.EOF
	}
	for i := range b {
		img := p.start + off + int64(i)
		if img/chunk == p.damaged {
			return i, fmt.Errorf("repo: corrupt chunk (image offset %d)", img)
		}
		b[i] = imageByte(img)
	}
	return len(b), eof
}

type store struct {
	off int64
	n   int
}

// kernel records what was handed to the page cache, checking every byte.
type kernel struct {
	t     *testing.T
	start int64
	errno syscall.Errno
	mu    sync.Mutex
	got   []store
}

func (k *kernel) WriteCache(off int64, data []byte) syscall.Errno {
	k.mu.Lock()
	defer k.mu.Unlock()
	for i, c := range data {
		if want := imageByte(k.start + off + int64(i)); c != want {
			k.t.Errorf("stored byte at %d: %#x, want %#x", off+int64(i), c, want)
			break
		}
	}
	k.got = append(k.got, store{off, len(data)})
	return k.errno
}

func (k *kernel) stores() []store {
	k.mu.Lock()
	defer k.mu.Unlock()
	s := slices.Clone(k.got)
	slices.SortFunc(s, func(a, b store) int { return int(a.off - b.off) })
	k.got = nil
	return s
}

// TestPageStore: a read hands the whole pages of the chunks it filled a
// page of to the page cache, never a byte of a damaged chunk; a store
// that ended is made again by the next read (the kernel dropped pages).
func TestPageStore(t *testing.T) {
	// a partition starting 1 MiB + 512 into chunk 0 (an old MBR start
	// would be 32256), not a whole number of pages long, over chunks 0-3;
	// chunk 2 is damaged
	start := int64(1<<20 + 512)
	size := 3*chunk + 5000 - start
	x := &partImage{start: start, size: size, damaged: 2}
	k := &kernel{t: t, start: start}
	s := newPageStore(x, start, slog.New(slog.DiscardHandler), "p1.img")
	read := func(off int64, n int) []store {
		t.Helper()
		s.after(k, off, n)
		s.wg.Wait()
		return k.stores()
	}
	end0 := (chunk - start) / pageSize * pageSize // last page boundary in chunk 0
	lo1 := roundUp(chunk - start)                 // first one in chunk 1
	end1 := (2*chunk - start) / pageSize * pageSize
	lo3 := roundUp(3*chunk - start)

	for _, c := range []struct {
		what string
		off  int64
		n    int
		want []store
	}{
		{"a read at the start", 0, 128 << 10, []store{{0, int(end0)}}},
		{"the same again (the kernel dropped it)", 4096, 4096, []store{{0, int(end0)}}},
		{"less than a page", 8192, 100, nil},
		{"the page across the end of chunk 0", end0, pageSize, nil},
		{"the pages across it", end0 - pageSize, 3 * pageSize, []store{{0, int(end0)}, {lo1, int(end1 - lo1)}}},
		{"the damaged chunk", end1 + pageSize, pageSize, nil},
		{"the end of the last page", size - 100, 100, nil},
		{"the last page, short of a page", lo3 + pageSize, int(size - lo3 - pageSize), []store{{lo3, int(size - lo3)}}},
		{"nothing", 0, 0, nil},
	} {
		if got := read(c.off, c.n); !slices.Equal(got, c.want) {
			t.Errorf("%s: stored %v, want %v", c.what, got, c.want)
		}
	}

	// a failing store ends storing (ENOENT, a file nobody has open, does not)
	k.errno = syscall.ENOENT
	if got := read(0, pageSize); len(got) != 1 {
		t.Errorf("stores with ENOENT: %v", got)
	}
	k.errno = syscall.EINVAL
	if got := read(0, pageSize); len(got) != 1 {
		t.Errorf("stores with EINVAL: %v", got)
	}
	k.errno = 0
	if got := read(0, pageSize); got != nil {
		t.Errorf("stored %v after a store failed", got)
	}

	// closed: nothing more
	s = newPageStore(x, start, slog.New(slog.DiscardHandler), "p1.img")
	s.close()
	if got := read(0, pageSize); got != nil {
		t.Errorf("stored %v after close", got)
	}
}

// TestPageStoreOnce: reads of a unit while its store runs start no other.
func TestPageStoreOnce(t *testing.T) {
	x := &partImage{size: 2 * chunk, damaged: -1}
	k := &blockingKernel{kernel: kernel{t: t}, release: make(chan struct{}), entered: make(chan struct{}, 1)}
	s := newPageStore(x, 0, slog.New(slog.DiscardHandler), "disk.img")
	s.after(k, 0, 128<<10)
	<-k.entered
	for off := int64(128 << 10); off < chunk; off += 128 << 10 {
		s.after(k, off, 128<<10)
	}
	close(k.release)
	s.wg.Wait()
	if got := k.stores(); !slices.Equal(got, []store{{0, chunk}}) {
		t.Errorf("stored %v, want chunk 0 once", got)
	}
	if x.reads != 1 {
		t.Errorf("%d reads of the export, want 1", x.reads)
	}
}

type blockingKernel struct {
	kernel
	entered chan struct{}
	release chan struct{}
}

func (k *blockingKernel) WriteCache(off int64, data []byte) syscall.Errno {
	select {
	case k.entered <- struct{}{}:
	default:
	}
	<-k.release
	return k.kernel.WriteCache(off, data)
}

func (p *partImage) View(off int64, n int, fn func([]byte)) error {
	b := make([]byte, n)
	if _, err := p.ReadAt(b, off); err != nil && err != io.EOF {
		return err
	}
	fn(b)
	return nil
}
