package nbdserver

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sync/semaphore"
)

// Options configure a Server. The zero value serves read-only exports and
// logs to stderr.
type Options struct {
	// COW lets clients write: writes go to a per-connection overlay that
	// is discarded at disconnect. Without it writes fail with EPERM and
	// exports are advertised read-only.
	COW bool
	// TempDir holds the COW overlays (unlinked at once); "" means
	// os.TempDir().
	TempDir string
	// BufferBytes bounds the read and write buffers of the requests all
	// connections serve at once; 0 means DefaultBufferBytes, and less
	// than one request of the maximum size (32 MiB) is raised to that.
	// One connection holds at most 32 MiB of them, so a client that
	// sends reads and never reads the replies pins at most that much,
	// and BufferBytes/32 MiB such clients make the others wait.
	BufferBytes int64
	// Logger receives diagnostics; nil means text on stderr.
	Logger *slog.Logger
}

// DefaultBufferBytes is Options.BufferBytes when it is 0: 256 MiB, 16 times
// what nbdcopy keeps in flight on one connection (64 requests of 256 KiB).
const DefaultBufferBytes = 256 << 20

// Server serves the exports of a Catalog over NBD.
type Server struct {
	cat    Catalog
	opts   Options
	log    *slog.Logger
	nextID atomic.Uint64
	mem    *semaphore.Weighted // Options.BufferBytes
	bufs   gauge               // request buffers in use, for tests
}

// New returns a Server for cat.
func New(cat Catalog, opts Options) *Server {
	opts.Logger = cmp.Or(opts.Logger, slog.New(slog.NewTextHandler(os.Stderr, nil)))
	opts.BufferBytes = max(cmp.Or(opts.BufferBytes, DefaultBufferBytes), maxRequest)
	return &Server{cat: cat, opts: opts, log: opts.Logger, mem: semaphore.NewWeighted(opts.BufferBytes)}
}

// Serve accepts connections on ln until ctx is cancelled, then closes ln and
// every connection, waits for their handlers to finish and returns nil. It
// returns an error if ln fails for another reason (after the same cleanup).
// Serve closes ln in every case.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	s.log.Info("listening", "addr", ln.Addr().String(), "cow", s.opts.COW)
	var (
		mu    sync.Mutex
		conns = make(map[net.Conn]struct{})
		wg    sync.WaitGroup
	)
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(ctx, func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for c := range conns {
			c.Close()
		}
	})
	defer func() {
		cancel()
		stop()
		wg.Wait()
	}()

	var delay time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				// Wait for the AfterFunc so every connection is closed.
				wg.Wait()
				s.log.Info("stopped")
				return nil
			}
			if temporary(err) {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				s.log.Warn("accept", "err", err, "retry_in", delay)
				select {
				case <-time.After(delay):
				case <-ctx.Done():
				}
				continue
			}
			ln.Close()
			return fmt.Errorf("nbdserver: accept: %w", err)
		}
		delay = 0
		mu.Lock()
		if ctx.Err() != nil {
			c.Close()
		} else {
			conns[c] = struct{}{}
		}
		mu.Unlock()
		wg.Go(func() {
			s.handle(ctx, c)
			mu.Lock()
			delete(conns, c)
			mu.Unlock()
		})
	}
}

func temporary(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	return slices.ContainsFunc([]error{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM, syscall.ECONNABORTED},
		func(e error) bool { return errors.Is(err, e) })
}

// handle serves one connection to its end.
func (s *Server) handle(ctx context.Context, nc net.Conn) {
	remote := ""
	if a := nc.RemoteAddr(); a != nil {
		remote = a.String()
	}
	log := s.log.With("conn", s.nextID.Add(1), "remote", remote)
	c := newConn(ctx, s, nc, log)
	defer c.cancel()
	start := time.Now()
	defer func() {
		if r := recover(); r != nil {
			log.Error("connection handler panicked", "panic", r)
		}
		nc.Close()
		if c.serving != nil {
			st := &c.stats
			log.Info("client done", "export", c.serving.name, "reads", st.reads.Load(), "read_bytes", st.readBytes.Load(),
				"writes", st.writes.Load(), "write_bytes", st.writeBytes.Load(), "errors", st.errors.Load(),
				"duration", time.Since(start).Round(time.Millisecond))
		}
	}()
	err := c.serve()
	switch {
	case err == nil, errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EPIPE), errors.Is(err, errAborted):
		log.Debug("connection closed", "err", err)
	default:
		log.Warn("connection ended", "err", err)
	}
}
