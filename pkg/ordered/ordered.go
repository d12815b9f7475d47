// Package ordered runs an ordered pipeline: one producer hands out items in
// order, a pool of workers processes them concurrently, and one consumer
// gets the processed items strictly in the order they were produced. It is
// backy's one way to read ahead in parallel while writing in order (the
// differential file source, restore to a stream, the librbd reader); pools
// whose results need no order use golang.org/x/sync/errgroup instead.
//
// The rules, the same for every pipeline:
//
//   - At most window items are in flight: sent and not yet consumed. send
//     blocks until the oldest of them has been consumed, so memory stays
//     bounded however fast the producer is.
//   - Each item in flight owns a slot in [0, window), given to work. A slot
//     is handed to a new item only after the consumer is done with the old
//     one, so a buffer per slot can be reused without locking.
//   - The first error, from the producer, a worker or the consumer, cancels
//     the context all of them are given and is what Run returns; so is the
//     cause of the caller's context when that is cancelled.
//   - Once an error happened, no item is consumed any more: the items in
//     flight are dropped.
//   - Run returns only after the producer and every worker have returned:
//     no goroutine it started outlives it, and nothing reads a buffer the
//     caller frees after Run. So produce and work must return once their
//     context is done (send fails then).
//   - consume runs on the goroutine that called Run.
package ordered

import (
	"context"
	"runtime"
	"sync"
)

// cell holds an item in flight; its index is the item's slot.
type cell[T any] struct {
	item T
	done chan struct{} // a token once work is over; capacity 1
}

// Run calls produce, which hands items in order to send, processes each
// item with work on one of workers goroutines, and calls consume with each
// processed item in the order it was sent. workers <= 0 means GOMAXPROCS,
// window <= 0 means 2*workers+2. send is not safe for concurrent use; it
// returns an error only when the pipeline is stopping, and produce should
// then return it. Run returns nil once every item was consumed and produce
// returned nil; otherwise the first error (see the package rules).
func Run[T any](ctx context.Context, workers, window int,
	produce func(ctx context.Context, send func(T) error) error,
	work func(ctx context.Context, slot int, item *T) error,
	consume func(item *T) error) error {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	if window <= 0 {
		window = 2*workers + 2
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	cells := make([]cell[T], window)
	free := make(chan int, window) // slots not in flight
	for i := range cells {
		cells[i].done = make(chan struct{}, 1)
		free <- i
	}
	// Neither channel ever holds more than window slots, so sends on them
	// never block.
	jobs := make(chan int, window)
	order := make(chan int, window)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for slot := range jobs {
				c := &cells[slot]
				if ctx.Err() == nil {
					if err := work(ctx, slot, &c.item); err != nil {
						cancel(err)
					}
				}
				c.done <- struct{}{}
			}
		})
	}
	wg.Go(func() {
		defer close(order)
		defer close(jobs)
		send := func(item T) error {
			if ctx.Err() != nil {
				return context.Cause(ctx)
			}
			select {
			case slot := <-free:
				cells[slot].item = item
				jobs <- slot
				order <- slot
				return nil
			case <-ctx.Done():
				return context.Cause(ctx)
			}
		}
		if err := produce(ctx, send); err != nil {
			cancel(err)
		}
	})
	err := consumeAll(ctx, cells, order, free, consume)
	if err != nil {
		cancel(err)
		err = context.Cause(ctx) // the first error, if another came first
	}
	wg.Wait()
	return err
}

// consumeAll consumes the items in order until the producer is done or the
// pipeline stops.
func consumeAll[T any](ctx context.Context, cells []cell[T], order <-chan int, free chan<- int, consume func(*T) error) error {
	for slot := range order {
		c := &cells[slot]
		select {
		case <-c.done:
		case <-ctx.Done():
		}
		if ctx.Err() != nil { // a worker's error comes before its token
			return context.Cause(ctx)
		}
		if err := consume(&c.item); err != nil {
			return err
		}
		free <- slot
	}
	return context.Cause(ctx) // nil, or why the producer stopped
}
