package nbdrepo

import (
	"container/list"
	"sync"

	"github.com/backy/backy/pkg/repo"
)

// maxFree bounds the evicted chunk buffers kept for reuse: enough to carry a
// steady sequential read without allocating, few enough that memory is
// given back after a burst.
const maxFree = 4

// chunkCache is a bounded LRU of decompressed, verified chunks keyed by
// their hash, shared by every export of a Catalog. Keying by hash rather
// than by (revision, offset) lets the connections of one client (nbdcopy
// and nbdfuse open four) and revisions that share chunks hit the same
// entries, and bounds the memory of the whole server rather than of each
// connection.
//
// Concurrent requests for one chunk load it once: the first inserts a
// loading entry, the others wait for it. A failed load is never cached, so
// every read of a corrupt chunk fails on its own and a repaired chunk is
// picked up. Entries are pinned while a reader copies out of them; an
// evicted entry's buffer is reused only once its last reader is done, so a
// reader never sees bytes of another chunk.
type chunkCache struct {
	load  func(dst []byte, h repo.Hash) ([]byte, error)
	max   int // entries, loading ones included
	ahead int // read-ahead loads allowed at once

	mu       sync.Mutex
	items    map[repo.Hash]*entry
	lru      list.List // of *entry, most recently used first
	free     [][]byte
	inflight int // read-ahead loads running
	stats    CacheStats
}

// CacheStats are counters of a Catalog's chunk cache.
type CacheStats struct {
	Hits      int64 // reads served from a cached (or loading) chunk
	Misses    int64 // reads that had to load a chunk
	ReadAhead int64 // chunks loaded ahead of a sequential reader
	Errors    int64 // loads that failed (corrupt or missing chunk, I/O error)
	Evictions int64
}

type entry struct {
	h     repo.Hash
	data  []byte
	err   error
	ready chan struct{} // closed when data or err is set
	refs  int           // pins: the loader and readers copying out
	elem  *list.Element // nil once evicted or failed
}

func newChunkCache(max, ahead int, load func([]byte, repo.Hash) ([]byte, error)) *chunkCache {
	return &chunkCache{load: load, max: max, ahead: ahead, items: make(map[repo.Hash]*entry)}
}

// get returns the pinned, loaded entry for h; the caller copies out of
// e.data and calls release.
func (c *chunkCache) get(h repo.Hash) (*entry, error) {
	c.mu.Lock()
	e, ok := c.items[h]
	if ok {
		e.refs++
		c.lru.MoveToFront(e.elem)
		c.stats.Hits++
		c.mu.Unlock()
		<-e.ready
	} else {
		e = c.insertLocked(h)
		c.stats.Misses++
		buf := c.bufLocked()
		c.mu.Unlock()
		c.fill(e, buf)
	}
	if err := e.err; err != nil {
		c.release(e)
		return nil, err
	}
	return e, nil
}

// prefetch starts loading h in the background unless it is cached, loading
// or too many read-ahead loads run already.
func (c *chunkCache) prefetch(h repo.Hash) {
	c.mu.Lock()
	if _, ok := c.items[h]; ok || c.inflight >= c.ahead {
		c.mu.Unlock()
		return
	}
	e := c.insertLocked(h)
	c.inflight++
	c.stats.ReadAhead++
	buf := c.bufLocked()
	c.mu.Unlock()
	go func() {
		c.fill(e, buf)
		c.mu.Lock()
		c.inflight--
		c.mu.Unlock()
		c.release(e)
	}()
}

// insertLocked adds a loading entry pinned once, evicting what exceeds max.
func (c *chunkCache) insertLocked(h repo.Hash) *entry {
	e := &entry{h: h, ready: make(chan struct{}), refs: 1}
	e.elem = c.lru.PushFront(e)
	c.items[h] = e
	for c.lru.Len() > c.max {
		old := c.lru.Back().Value.(*entry)
		c.unlinkLocked(old)
		c.stats.Evictions++
		if old.refs == 0 {
			c.recycleLocked(old)
		}
	}
	return e
}

func (c *chunkCache) unlinkLocked(e *entry) {
	if e.elem == nil {
		return
	}
	c.lru.Remove(e.elem)
	e.elem = nil
	if c.items[e.h] == e {
		delete(c.items, e.h)
	}
}

func (c *chunkCache) bufLocked() []byte {
	if n := len(c.free); n > 0 {
		b := c.free[n-1]
		c.free = c.free[:n-1]
		return b
	}
	return nil // ReadChunk allocates
}

func (c *chunkCache) recycleLocked(e *entry) {
	if e.data != nil && len(c.free) < maxFree {
		c.free = append(c.free, e.data[:cap(e.data)])
	}
	e.data = nil
}

// fill loads the chunk into e and wakes its waiters. A failed entry leaves
// the cache at once, so the next read tries again.
func (c *chunkCache) fill(e *entry, buf []byte) {
	if buf == nil {
		buf = make([]byte, repo.ChunkSize)
	}
	data, err := c.load(buf, e.h)
	if err != nil {
		c.mu.Lock()
		c.unlinkLocked(e)
		c.stats.Errors++
		c.mu.Unlock()
		e.err = err
	} else {
		e.data = data
	}
	close(e.ready)
}

// release unpins e; the last reader of an evicted entry recycles its buffer.
func (c *chunkCache) release(e *entry) {
	c.mu.Lock()
	e.refs--
	if e.refs == 0 && e.elem == nil {
		c.recycleLocked(e)
	}
	c.mu.Unlock()
}

func (c *chunkCache) snapshot() (CacheStats, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stats, c.lru.Len()
}
