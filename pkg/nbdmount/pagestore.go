package nbdmount

import (
	"log/slog"
	"sync"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"

	"github.com/backy/backy/pkg/nbdserver"
	"github.com/backy/backy/pkg/repo"
)

// DefaultCacheChunks is the chunk cache of a mount when Options leave it
// 0: the page cache keeps what was read (pageStore), so backy-nbd's own
// cache only carries the chunks being read and loaded ahead. Every chunk
// buffer costs its first use page faults (on the bench machine as much
// time as decompressing into it): with 32 a cp -a of 120 MiB took 1.3 s
// of backy-nbd CPU, with 8 0.8 s. But 8 is too few: fuse2fs keeps a few
// metadata chunks (inode tables, extent blocks) hot in the LRU beside the
// chunk being read and the chunks being stored, and the chunks loaded
// ahead, which nobody touches until the reader gets there, were the
// least recently used and evicted first: a cp -a of 564 MiB of large
// files loaded 250-290 chunks for 154 (one in two twice). With 16 each is
// loaded once (and two load ahead at once, one per core on two:
// nbdrepo's readAheadLoads): backy-nbd's CPU for that copy, medians of
// three sets of alternating runs, 1.27-1.49 s -> 0.85-1.11 s.
const DefaultCacheChunks = 16

// pageStore hands whole chunks of one image file to the kernel's page
// cache after a read has loaded them (images.go says why). Its units are
// the chunks as the file's offsets see them (a partition starts anywhere
// in its chunk), shrunk to whole pages.
type pageStore struct {
	x     viewer
	phase int64 // offset of the file's start in its first chunk
	size  int64
	slots chan struct{} // one per store running: storesAtOnce
	log   *slog.Logger
	name  string
	wg    sync.WaitGroup

	mu   sync.Mutex
	busy map[int64]bool // units being stored
	off  bool           // closed, or a store failed: store nothing more
}

// viewer is an export that shows a chunk's bytes without copying them
// (nbdrepo's exports).
type viewer interface {
	nbdserver.Export
	View(off int64, n int, fn func(p []byte)) error
}

// cacheWriter is the image file's inode: WriteCache is FUSE's
// NOTIFY_STORE.
type cacheWriter interface {
	WriteCache(off int64, data []byte) syscall.Errno
}

var _ cacheWriter = (*fs.Inode)(nil)

// storesAtOnce is how many chunks are handed to the page cache at once.
const storesAtOnce = 2

const pageSize = 4096

// newPageStore returns the page store of a file showing x, which starts
// at byte start of the revision's image.
func newPageStore(x viewer, start int64, log *slog.Logger, name string) *pageStore {
	s := &pageStore{x: x, phase: start % repo.ChunkSize, size: x.Size(), slots: make(chan struct{}, storesAtOnce),
		log: log, name: name, busy: make(map[int64]bool)}
	return s
}

// unit returns the bytes of unit u that the kernel can keep as whole
// pages: from the first page boundary in chunk u to the last one (or to
// the end of the file); lo == hi when there is none.
func (s *pageStore) unit(u int64) (lo, hi int64) {
	lo = max(u*repo.ChunkSize-s.phase, 0)
	hi = min((u+1)*repo.ChunkSize-s.phase, s.size)
	lo = roundUp(lo)
	if hi < s.size {
		hi = hi / pageSize * pageSize
	}
	return lo, max(lo, hi)
}

func roundUp(off int64) int64 { return (off + pageSize - 1) / pageSize * pageSize }

// after starts a store of each unit of which the read [off, off+n) filled
// a whole page, unless one runs. A store waits for the lock of each page
// it fills, and the pages of a read are locked from its request to its
// reply: so a read of a unit whose store has ended asks for pages the
// kernel has dropped since, and the unit is stored again.
func (s *pageStore) after(ino cacheWriter, off int64, n int) {
	if n <= 0 {
		return
	}
	end := off + int64(n)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.off {
		return
	}
	for u := (off + s.phase) / repo.ChunkSize; u <= (end-1+s.phase)/repo.ChunkSize; u++ {
		lo, hi := s.unit(u)
		a, b := max(lo, roundUp(off)), min(hi, end)
		if b < s.size {
			b = b / pageSize * pageSize
		}
		if a >= b || s.busy[u] {
			continue
		}
		s.busy[u] = true
		s.wg.Add(1)
		go s.store(ino, u, lo, hi)
	}
}

// store hands unit u to the kernel straight from the chunk cache (the
// read that asked for it has just loaded it). It runs apart from the
// read: until that read is answered, its pages are locked.
func (s *pageStore) store(ino cacheWriter, u, lo, hi int64) {
	defer s.wg.Done()
	s.slots <- struct{}{}
	defer func() {
		<-s.slots
		s.mu.Lock()
		delete(s.busy, u)
		s.mu.Unlock()
	}()
	s.mu.Lock()
	off := s.off
	s.mu.Unlock()
	if off {
		return
	}
	var errno syscall.Errno
	if err := s.x.View(lo, int(hi-lo), func(p []byte) { errno = ino.WriteCache(lo, p) }); err != nil {
		return // a damaged chunk: never stored, its reads fail on their own
	}
	// ENOENT: the kernel has forgotten the file (nobody has it open)
	if errno != 0 && errno != syscall.ENOENT {
		s.mu.Lock()
		if !s.off {
			s.off = true
			s.log.Warn("cannot hand chunks to the page cache, reads stay in 128 KiB pieces", "file", s.name, "err", errno.Error())
		}
		s.mu.Unlock()
	}
}

// close stops storing and waits for the stores running.
func (s *pageStore) close() {
	s.mu.Lock()
	s.off = true
	s.mu.Unlock()
	s.wg.Wait()
}
