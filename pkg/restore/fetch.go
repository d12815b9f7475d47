package restore

import (
	"context"
	"fmt"
	"runtime"
	"sync"

	"github.com/backy/backy/pkg/repo"
)

// slot is one chunk on its way to the output, in image order.
type slot struct {
	n    int64
	data []byte // nil for a zero chunk; otherwise ChunkSize verified bytes
	err  error
	done chan struct{}
}

// fetcher reads, decompresses and verifies chunks ahead of the writer.
type fetcher struct {
	r     *repo.Repo
	rev   *repo.Revision
	ix    *repo.Index
	bufs  chan []byte
	order chan *slot
	jobs  chan *slot
	wg    sync.WaitGroup
}

// fetch starts the workers and returns the fetcher; its order channel
// yields every chunk of ix in order. Cancel ctx to stop it early.
func fetch(ctx context.Context, r *repo.Repo, rev *repo.Revision, ix *repo.Index, workers int) *fetcher {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	f := &fetcher{r: r, rev: rev, ix: ix,
		bufs:  make(chan []byte, 2*workers+2),
		order: make(chan *slot, 2*workers+1),
		jobs:  make(chan *slot, workers)}
	for range cap(f.bufs) {
		f.bufs <- nil
	}
	for range workers {
		f.wg.Add(1)
		go f.work()
	}
	go f.produce(ctx)
	return f
}

func (f *fetcher) produce(ctx context.Context) {
	defer close(f.order)
	defer close(f.jobs)
	for n, h := range f.ix.Hashes {
		s := &slot{n: int64(n), done: make(chan struct{})}
		if h.IsZero() {
			close(s.done)
		} else {
			select {
			case s.data = <-f.bufs:
			case <-ctx.Done():
				return
			}
			if s.data == nil {
				s.data = make([]byte, repo.ChunkSize)
			}
			select {
			case f.jobs <- s:
			case <-ctx.Done():
				return
			}
		}
		select {
		case f.order <- s:
		case <-ctx.Done():
			return
		}
	}
}

func (f *fetcher) work() {
	defer f.wg.Done()
	for s := range f.jobs {
		h := f.ix.Hashes[s.n]
		out, err := f.r.ReadChunk(s.data, h)
		if err != nil {
			s.err = fmt.Errorf("%w (revision %s, chunk %d at offset %d)", err, f.rev.ID, s.n, s.n*repo.ChunkSize)
		} else {
			s.data = out
		}
		close(s.done)
	}
}

// release returns a slot's buffer for reuse.
func (f *fetcher) release(s *slot) {
	if s.data != nil {
		select {
		case f.bufs <- s.data[:cap(s.data)]:
		default:
		}
	}
}

// each calls fn for every chunk in order with its bytes inside the image
// (nil for zero chunks), stopping at the first error.
func each(ctx context.Context, r *repo.Repo, rev *repo.Revision, ix *repo.Index, workers int,
	fn func(off int64, length int64, data []byte) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	f := fetch(ctx, r, rev, ix, workers)
	defer func() {
		cancel()
		for range f.order { // let the producer finish
		}
		f.wg.Wait()
	}()
	for s := range f.order {
		<-s.done
		if s.err != nil {
			return s.err
		}
		off := s.n * repo.ChunkSize
		length := min(repo.ChunkSize, ix.Size-off)
		var data []byte
		if s.data != nil {
			data = s.data[:length]
		}
		if err := fn(off, length, data); err != nil {
			return err
		}
		f.release(s)
	}
	return ctx.Err()
}
