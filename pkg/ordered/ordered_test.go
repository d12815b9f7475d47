package ordered

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// item is what the tests send: its number, and what the worker made of it.
type item struct {
	n, out, slot int
}

var (
	errProduce = errors.New("produce failed")
	errWork    = errors.New("work failed")
	errConsume = errors.New("consume failed")
)

// counter produces n items (n < 0: until send fails) and remembers how
// send ended.
type counter struct {
	sent    atomic.Int64
	sendErr error
}

func (c *counter) produce(n int) func(context.Context, func(item) error) error {
	return func(_ context.Context, send func(item) error) error {
		for i := 0; n < 0 || i < n; i++ {
			if err := send(item{n: i}); err != nil {
				c.sendErr = err
				return err
			}
			c.sent.Add(1)
		}
		return nil
	}
}

// noLeak fails the test if a goroutine started by Run is still there.
// The check is immediate: Run starts its goroutines with WaitGroup.Go, which
// calls Done only after the function it runs has returned, so once Run
// returns none of its functions can be on any stack.
func noLeak(t *testing.T) {
	t.Helper()
	buf := make([]byte, 1<<20)
	var left []string
	for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
		if strings.Contains(g, "pkg/ordered.Run[") {
			left = append(left, g)
		}
	}
	if len(left) > 0 {
		t.Fatalf("%d goroutines of Run still there after it returned:\n%s", len(left), strings.Join(left, "\n\n"))
	}
}

func TestOrderUnderRandomDelays(t *testing.T) {
	for _, tc := range []struct{ workers, window, n int }{
		{1, 1, 50}, {4, 3, 300}, {8, 0, 500}, {3, 64, 500}, {0, 0, 200},
	} {
		t.Run(fmt.Sprintf("workers=%d,window=%d", tc.workers, tc.window), func(t *testing.T) {
			var c counter
			next := 0
			err := Run(context.Background(), tc.workers, tc.window, c.produce(tc.n),
				func(_ context.Context, _ int, it *item) error {
					time.Sleep(time.Duration(rand.IntN(300)) * time.Microsecond)
					it.out = it.n * it.n
					return nil
				},
				func(it *item) error {
					if it.n != next || it.out != it.n*it.n {
						return fmt.Errorf("consumed item %d (out %d), want %d (out %d)", it.n, it.out, next, next*next)
					}
					next++
					return nil
				})
			if err != nil {
				t.Fatal(err)
			}
			if next != tc.n {
				t.Fatalf("consumed %d items, want %d", next, tc.n)
			}
			noLeak(t)
		})
	}
}

func TestNothingToDo(t *testing.T) {
	err := Run(context.Background(), 2, 2, func(context.Context, func(item) error) error { return nil },
		func(context.Context, int, *item) error { t.Error("work called"); return nil },
		func(*item) error { t.Error("consume called"); return nil })
	if err != nil {
		t.Fatal(err)
	}
	noLeak(t)
}

// TestWindowBound: with the consumer held up, the producer gets exactly
// window items out and then waits; the items in flight, measured from the
// start of their work to the end of their consumption, never exceed the
// window; and a slot is never owned by two items at once.
func TestWindowBound(t *testing.T) {
	for _, tc := range []struct{ workers, window int }{{1, 1}, {2, 5}, {4, 4}, {8, 3}, {3, 16}} {
		t.Run(fmt.Sprintf("workers=%d,window=%d", tc.workers, tc.window), func(t *testing.T) {
			const n = 400
			var c counter
			hold := make(chan struct{})
			var started, consumed, maxLive atomic.Int64
			owner := make([]atomic.Int64, tc.window)
			for i := range owner {
				owner[i].Store(-1)
			}
			done := make(chan error, 1)
			go func() {
				done <- Run(context.Background(), tc.workers, tc.window, c.produce(n),
					func(_ context.Context, slot int, it *item) error {
						if slot < 0 || slot >= tc.window {
							return fmt.Errorf("slot %d outside the window of %d", slot, tc.window)
						}
						if !owner[slot].CompareAndSwap(-1, int64(it.n)) {
							return fmt.Errorf("item %d got slot %d, which item %d still owns", it.n, slot, owner[slot].Load())
						}
						it.slot = slot
						live := started.Add(1) - consumed.Load()
						for m := maxLive.Load(); live > m && !maxLive.CompareAndSwap(m, live); m = maxLive.Load() {
						}
						time.Sleep(time.Duration(rand.IntN(100)) * time.Microsecond)
						return nil
					},
					func(it *item) error {
						if it.n == 0 {
							<-hold
						}
						owner[it.slot].Store(-1)
						consumed.Add(1)
						return nil
					})
			}()
			deadline := time.Now().Add(5 * time.Second)
			w := int64(tc.window)
			for (c.sent.Load() < w || started.Load() < w) && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
			time.Sleep(50 * time.Millisecond) // room to run past the bound, if it could
			if got, work := c.sent.Load(), started.Load(); got != w || work != w {
				t.Errorf("while the consumer was held the producer got %d items out and %d were worked on, want the window of %d", got, work, w)
			}
			close(hold)
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			if consumed.Load() != n {
				t.Fatalf("consumed %d, want %d", consumed.Load(), n)
			}
			if m := maxLive.Load(); m > w {
				t.Errorf("%d items in flight at once, window %d", m, w)
			}
			noLeak(t)
		})
	}
}

// TestProducerError: the items in flight when the producer fails are never
// consumed, and Run returns the producer's error even though the workers
// then return context errors of their own.
func TestProducerError(t *testing.T) {
	const k = 5
	consumed := 0
	err := Run(context.Background(), 3, 8,
		func(_ context.Context, send func(item) error) error {
			for i := range k {
				if err := send(item{n: i}); err != nil {
					return err
				}
			}
			return errProduce
		},
		func(ctx context.Context, _ int, _ *item) error {
			<-ctx.Done() // finish only once the pipeline stops
			return ctx.Err()
		},
		func(*item) error { consumed++; return nil })
	if !errors.Is(err, errProduce) {
		t.Fatalf("Run: %v, want %v", err, errProduce)
	}
	if consumed != 0 {
		t.Errorf("%d items consumed after the producer failed", consumed)
	}
	noLeak(t)
}

// TestWorkerError: the items before the failing one are consumed, none at
// or after it, the producer's send fails with the worker's error, and Run
// returns it.
func TestWorkerError(t *testing.T) {
	for _, k := range []int{0, 1, 7, 40} {
		t.Run(fmt.Sprint(k), func(t *testing.T) {
			var c counter
			var consumed atomic.Int64
			var got []int
			err := Run(context.Background(), 4, 6, c.produce(-1),
				func(ctx context.Context, _ int, it *item) error {
					if it.n != k {
						return nil
					}
					for consumed.Load() < int64(k) && ctx.Err() == nil {
						time.Sleep(100 * time.Microsecond)
					}
					return fmt.Errorf("item %d: %w", it.n, errWork)
				},
				func(it *item) error {
					got = append(got, it.n)
					consumed.Add(1)
					return nil
				})
			if !errors.Is(err, errWork) {
				t.Fatalf("Run: %v, want %v", err, errWork)
			}
			if !errors.Is(c.sendErr, errWork) {
				t.Errorf("send failed with %v, want %v", c.sendErr, errWork)
			}
			if len(got) != k {
				t.Errorf("consumed %v, want the %d items before the failing one", got, k)
			}
			noLeak(t)
		})
	}
}

// TestConsumerError: nothing is consumed after the consumer failed, the
// producer's send fails with its error, and Run returns it.
func TestConsumerError(t *testing.T) {
	for _, k := range []int{0, 3, 50} {
		t.Run(fmt.Sprint(k), func(t *testing.T) {
			var c counter
			var got []int
			err := Run(context.Background(), 2, 4, c.produce(-1),
				func(context.Context, int, *item) error { return nil },
				func(it *item) error {
					got = append(got, it.n)
					if it.n == k {
						return errConsume
					}
					return nil
				})
			if !errors.Is(err, errConsume) {
				t.Fatalf("Run: %v, want %v", err, errConsume)
			}
			if !errors.Is(c.sendErr, errConsume) {
				t.Errorf("send failed with %v, want %v", c.sendErr, errConsume)
			}
			if len(got) != k+1 {
				t.Errorf("consumed %v, want items 0 to %d", got, k)
			}
			noLeak(t)
		})
	}
}

// TestFirstErrorWins: when several fail, Run returns the first failure,
// not a later one nor the cancellation it caused.
func TestFirstErrorWins(t *testing.T) {
	t.Run("workers", func(t *testing.T) {
		var c counter
		err := Run(context.Background(), 4, 8, c.produce(-1),
			func(ctx context.Context, _ int, it *item) error {
				switch {
				case it.n == 2:
					return errWork
				case it.n > 2:
					<-ctx.Done() // after the first failure
					return errors.New("a later failure")
				}
				return nil
			},
			func(*item) error { return nil })
		if !errors.Is(err, errWork) {
			t.Fatalf("Run: %v, want %v", err, errWork)
		}
		noLeak(t)
	})
	t.Run("consumer after a worker", func(t *testing.T) {
		var c counter
		consuming, stopped := make(chan struct{}), make(chan struct{})
		err := Run(context.Background(), 2, 4, c.produce(-1),
			func(ctx context.Context, _ int, it *item) error {
				if it.n == 1 { // fails while item 0 is being consumed
					<-consuming
					go func() { <-ctx.Done(); close(stopped) }()
					return errWork
				}
				return nil
			},
			func(*item) error {
				close(consuming)
				<-stopped
				return errConsume
			})
		if !errors.Is(err, errWork) {
			t.Fatalf("Run: %v, want %v", err, errWork)
		}
		noLeak(t)
	})
}

// TestCancellation: cancelling the caller's context stops the producer and
// the workers, nothing is consumed after it, and Run returns its cause.
func TestCancellation(t *testing.T) {
	t.Run("while running", func(t *testing.T) {
		const k = 10
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var c counter
		consumed := 0
		err := Run(ctx, 3, 5, c.produce(-1),
			func(ctx context.Context, _ int, it *item) error {
				if it.n > k { // these wait for the end
					<-ctx.Done()
				}
				return nil
			},
			func(it *item) error {
				consumed++
				if it.n == k {
					cancel()
				}
				return nil
			})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Run: %v, want %v", err, context.Canceled)
		}
		if consumed != k+1 {
			t.Errorf("consumed %d items, want %d", consumed, k+1)
		}
		if !errors.Is(c.sendErr, context.Canceled) {
			t.Errorf("send failed with %v, want %v", c.sendErr, context.Canceled)
		}
		noLeak(t)
	})
	t.Run("with a cause", func(t *testing.T) {
		why := errors.New("shutting down")
		ctx, cancel := context.WithCancelCause(context.Background())
		var c counter
		go func() {
			for c.sent.Load() < 20 {
				time.Sleep(time.Millisecond)
			}
			cancel(why)
		}()
		err := Run(ctx, 2, 3, c.produce(-1),
			func(context.Context, int, *item) error { time.Sleep(100 * time.Microsecond); return nil },
			func(*item) error { return nil })
		if !errors.Is(err, why) {
			t.Fatalf("Run: %v, want %v", err, why)
		}
		noLeak(t)
	})
	t.Run("before the start", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		var c counter
		err := Run(ctx, 2, 3, c.produce(-1),
			func(context.Context, int, *item) error { t.Error("work called"); return nil },
			func(*item) error { t.Error("consume called"); return nil })
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Run: %v, want %v", err, context.Canceled)
		}
		if c.sent.Load() != 0 {
			t.Errorf("%d items sent", c.sent.Load())
		}
		noLeak(t)
	})
	t.Run("producer that ignores it", func(t *testing.T) {
		// A producer that stops quietly (returns nil) when its context is
		// done must not pass for a complete one.
		ctx, cancel := context.WithCancel(context.Background())
		consumed := 0
		err := Run(ctx, 2, 3,
			func(ctx context.Context, send func(item) error) error {
				for i := 0; ; i++ {
					if send(item{n: i}) != nil {
						return nil
					}
				}
			},
			func(context.Context, int, *item) error { return nil },
			func(*item) error {
				if consumed++; consumed == 5 {
					cancel()
				}
				return nil
			})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Run: %v, want %v", err, context.Canceled)
		}
		noLeak(t)
	})
}

// BenchmarkRun is the pipeline's own cost per item: no work at all, and
// 64 KiB of work per item, on every core.
func BenchmarkRun(b *testing.B) {
	for _, size := range []int{0, 64 << 10} {
		b.Run(fmt.Sprintf("work=%dB", size), func(b *testing.B) {
			bufs := make([][]byte, 2*runtime.GOMAXPROCS(0)+2)
			b.SetBytes(int64(size))
			err := Run(context.Background(), 0, len(bufs),
				func(_ context.Context, send func(int) error) error {
					for i := range b.N {
						if err := send(i); err != nil {
							return err
						}
					}
					return nil
				},
				func(_ context.Context, slot int, it *int) error {
					if bufs[slot] == nil {
						bufs[slot] = make([]byte, size)
					}
					for i := range bufs[slot] {
						bufs[slot][i] = byte(*it + i)
					}
					return nil
				},
				func(*int) error { return nil })
			if err != nil {
				b.Fatal(err)
			}
		})
	}
}
