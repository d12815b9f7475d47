package nbdserver

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"

	"github.com/backy/backy/pkg/extent"
)

// Per connection, at most maxInFlight requests are served at once, holding
// at most maxInFlightBytes of read and write buffers between them (a single
// request of maxRequest bytes runs alone); all connections together hold at
// most Options.BufferBytes (Server.mem). The request reader waits while
// any of these is exhausted, so a client that sends faster than it reads
// replies is slowed down by TCP, not by the server's memory, and one that
// never reads its replies pins at most maxInFlightBytes.
const (
	maxInFlight      = 32
	maxInFlightBytes = maxRequest
)

// opened is an export a client has asked for by name on this connection.
type opened struct {
	name string
	exp  Export
	size int64
	ov   *overlay // nil unless COW (and GO)
	ovMu sync.RWMutex
}

type request struct {
	flags  uint16
	typ    uint16
	handle uint64
	offset uint64
	length uint32
}

type stats struct {
	reads, writes, errors atomic.Int64
	readBytes, writeBytes atomic.Int64
}

// conn is one client connection: negotiation (negotiate.go), then the
// transmission loop, which reads requests one after the other and serves
// each in its own goroutine; replies go out whole, one at a time, in the
// order the requests complete.
type conn struct {
	srv    *Server
	nc     net.Conn
	br     *bufio.Reader
	log    *slog.Logger
	ctx    context.Context // cancelled when the connection or the server ends
	cancel context.CancelFunc

	// negotiation
	cand       *opened // resolved by the last INFO or GO
	serving    *opened // after GO: the export being served
	structured bool    // NBD_OPT_STRUCTURED_REPLY was negotiated
	metaOn     bool    // base:allocation was selected ...
	metaName   string  // ... for this export name

	// transmission
	wmu     sync.Mutex // serializes replies
	werr    error      // the first failed reply write, under wmu
	workers sync.WaitGroup
	budget  budget
	stats   stats
}

func newConn(ctx context.Context, srv *Server, nc net.Conn, log *slog.Logger) *conn {
	c := &conn{srv: srv, nc: nc, br: bufio.NewReaderSize(nc, 64<<10), log: log}
	c.ctx, c.cancel = context.WithCancel(ctx)
	c.budget.init(maxInFlight, maxInFlightBytes)
	return c
}

// close closes the socket and stops a request reader waiting for buffers.
func (c *conn) close() {
	c.cancel()
	c.nc.Close()
}

// acquire waits until a request of size bytes fits the connection's budget
// and the server's; an error means the connection or the server ended.
func (c *conn) acquire(size int64) error {
	c.budget.acquire(size)
	if err := c.srv.mem.Acquire(c.ctx, size); err != nil {
		c.budget.release(size)
		return err
	}
	return nil
}

func (c *conn) release(size int64) {
	c.srv.mem.Release(size)
	c.budget.release(size)
}

// getBuf and putBuf take request buffers from the pool and count them.
func (c *conn) getBuf(n int) []byte {
	c.srv.bufs.add(int64(n))
	return getBuf(n)
}

func (c *conn) putBuf(p []byte) {
	c.srv.bufs.add(-int64(len(p)))
	putBuf(p)
}

// serve runs the connection to its end and releases its export.
func (c *conn) serve() error {
	defer c.closeExport()
	if err := c.negotiate(); err != nil {
		return err
	}
	return c.transmit()
}

func (c *conn) closeExport() {
	o := c.cand
	if o == nil {
		return
	}
	c.cand = nil
	var err error
	if o.ov != nil {
		err = o.ov.Close()
	}
	if err = errors.Join(o.exp.Close(), err); err != nil {
		c.log.Warn("closing export", "export", o.name, "err", err)
	}
}

// transmit reads requests until the client disconnects. It returns only
// once every request it started has finished.
func (c *conn) transmit() error {
	var h [requestHeaderSize]byte
	for {
		if _, err := io.ReadFull(c.br, h[:]); err != nil {
			return c.stop(err)
		}
		if be.Uint32(h[0:4]) != requestMagic {
			return c.stop(errBadMagic)
		}
		r := request{flags: be.Uint16(h[4:6]), typ: be.Uint16(h[6:8]), handle: be.Uint64(h[8:16]),
			offset: be.Uint64(h[16:24]), length: be.Uint32(h[24:28])}
		switch r.typ {
		case cmdRead:
			if r.length > maxRequest {
				c.fail(r, errnoEINVAL, fmt.Errorf("%w: read of %d bytes", errTooLarge, r.length))
				continue
			}
			if err := c.acquire(int64(r.length)); err != nil {
				return c.stop(err)
			}
			c.start(func() { c.read(r) })
		case cmdWrite:
			if r.length > maxRequest {
				// Its payload follows; skipping 32 MiB and more of it
				// is not worth the trouble.
				return c.stop(fmt.Errorf("%w: write of %d bytes", errTooLarge, r.length))
			}
			if err := c.acquire(int64(r.length)); err != nil {
				return c.stop(err)
			}
			p := c.getBuf(int(r.length))
			if _, err := io.ReadFull(c.br, p); err != nil {
				c.putBuf(p)
				c.release(int64(r.length))
				return c.stop(err)
			}
			c.start(func() { c.write(r, p) })
		case cmdDisc:
			c.workers.Wait() // finish what the client asked for first
			return nil
		case cmdFlush:
			// Nothing is ever dirty: the export is read-only and the COW
			// overlay is discarded at disconnect.
			c.send(simpleHeader(r.handle, 0))
		case cmdBlockStatus:
			c.blockStatus(r)
		default:
			c.fail(r, errnoEINVAL, fmt.Errorf("%w %d", errCommand, r.typ))
		}
		if err := c.replyErr(); err != nil {
			return c.stop(err)
		}
	}
}

var (
	errTooLarge   = errors.New("nbdserver: request larger than the 32 MiB maximum")
	errCommand    = errors.New("nbdserver: unsupported command")
	errOutOfRange = errors.New("nbdserver: request beyond the end of the export")
)

// stop ends the transmission phase after a read error (the client went
// away or broke the protocol): the socket is closed, so replies still
// being written fail at once, and the requests in flight are waited for.
func (c *conn) stop(err error) error {
	c.close()
	c.workers.Wait()
	return err
}

// start serves one request in its own goroutine; the caller has acquired
// its budget, which the goroutine releases. A request that panics ends its
// connection, not the server.
func (c *conn) start(f func()) {
	c.workers.Go(func() {
		defer func() {
			if r := recover(); r != nil {
				c.log.Error("request handler panicked", "panic", r)
				c.close()
			}
		}()
		f()
	})
}

// read serves NBD_CMD_READ. A failed read is an error reply: no byte of it
// reaches the client.
func (c *conn) read(r request) {
	defer c.release(int64(r.length))
	o := c.serving
	if r.offset > uint64(o.size) || uint64(r.length) > uint64(o.size)-r.offset {
		c.fail(r, errnoEINVAL, fmt.Errorf("%w: read of %d bytes at %d, size %d", errOutOfRange, r.length, r.offset, o.size))
		return
	}
	p := c.getBuf(int(r.length))
	defer c.putBuf(p)
	var err error
	if o.ov != nil {
		o.ovMu.RLock()
		err = o.ov.ReadAt(p, int64(r.offset))
		o.ovMu.RUnlock()
	} else {
		err = readFull(o.exp, p, int64(r.offset))
	}
	if err != nil {
		c.fail(r, errnoEIO, fmt.Errorf("nbdserver: export %q: read of %d bytes at %d: %w", o.name, r.length, r.offset, err))
		return
	}
	c.stats.reads.Add(1)
	c.stats.readBytes.Add(int64(r.length))
	switch {
	case !c.structured:
		c.send(simpleHeader(r.handle, 0), p)
	case r.length == 0:
		c.send(chunkHeader(r.handle, replyTypeNone, 0))
	case extent.IsZero(p):
		c.send(be.AppendUint32(be.AppendUint64(chunkHeader(r.handle, replyTypeOffsetHole, 12), r.offset), r.length))
	default:
		c.send(be.AppendUint64(chunkHeader(r.handle, replyTypeOffsetData, 8+int(r.length)), r.offset), p)
	}
}

// write serves NBD_CMD_WRITE into the COW overlay, or refuses it.
func (c *conn) write(r request, p []byte) {
	defer c.release(int64(r.length))
	defer c.putBuf(p)
	o := c.serving
	switch {
	case o.ov == nil:
		c.fail(r, errnoEPERM, fmt.Errorf("nbdserver: export %q is read-only", o.name))
		return
	case r.offset > uint64(o.size) || uint64(r.length) > uint64(o.size)-r.offset:
		c.fail(r, errnoENOSPC, fmt.Errorf("%w: write of %d bytes at %d, size %d", errOutOfRange, r.length, r.offset, o.size))
		return
	}
	o.ovMu.Lock()
	err := o.ov.WriteAt(p, int64(r.offset))
	o.ovMu.Unlock()
	if err != nil {
		c.fail(r, errnoEIO, fmt.Errorf("nbdserver: export %q: write of %d bytes at %d: %w", o.name, r.length, r.offset, err))
		return
	}
	c.stats.writes.Add(1)
	c.stats.writeBytes.Add(int64(r.length))
	c.send(simpleHeader(r.handle, 0))
}

// fail logs a failed request and sends its error reply: a structured error
// chunk for a read when structured replies are on, a simple reply otherwise.
// An I/O error is logged as an error; a request the client got wrong (a
// write to a read-only export, a read past the end) only at debug level,
// so that cheap bad requests cannot flood the log: the client's summary
// line counts them.
func (c *conn) fail(r request, errno uint32, err error) {
	c.stats.errors.Add(1)
	lvl := slog.LevelDebug
	if errno == errnoEIO {
		lvl = slog.LevelError
	}
	c.log.Log(c.ctx, lvl, "request failed", "err", err)
	if c.structured && r.typ == cmdRead {
		// error, then a message length of 0 and no message
		c.send(chunkHeader(r.handle, replyTypeError, 6), be.AppendUint16(be.AppendUint32(nil, errno), 0))
		return
	}
	c.send(simpleHeader(r.handle, errno))
}

func simpleHeader(handle uint64, errno uint32) []byte {
	h := be.AppendUint32(make([]byte, 0, replyHeaderSize), simpleReplyMagic)
	return be.AppendUint64(be.AppendUint32(h, errno), handle)
}

// chunkHeader starts the header of a final structured reply chunk; the
// caller may append up to 12 bytes of payload.
func chunkHeader(handle uint64, typ uint16, length int) []byte {
	h := be.AppendUint32(make([]byte, 0, structuredHeaderSize+12), structuredReplyMagic)
	h = be.AppendUint16(be.AppendUint16(h, replyFlagDone), typ)
	return be.AppendUint32(be.AppendUint64(h, handle), uint32(length))
}

// send writes one whole reply with one writev, after the replies before
// it. After a failed write the connection is closed and nothing more is
// sent.
func (c *conn) send(parts ...[]byte) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.werr != nil {
		return
	}
	bufs := net.Buffers(parts)
	if _, err := bufs.WriteTo(c.nc); err != nil {
		c.werr = err
		c.close() // the request reader stops too
	}
}

func (c *conn) replyErr() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.werr
}

// readFull reads exactly len(p) bytes at off; io.EOF together with a full
// read is success, a short read is io.ErrUnexpectedEOF.
func readFull(r io.ReaderAt, p []byte, off int64) error {
	n, err := r.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// budget bounds the requests in flight on a connection and their bytes.
type budget struct {
	mu          sync.Mutex
	cond        sync.Cond
	n, maxN     int
	bytes, maxB int64
}

func (b *budget) init(n int, bytes int64) {
	b.cond.L = &b.mu
	b.maxN, b.maxB = n, bytes
}

// acquire waits until one more request of size bytes (at most the whole
// budget) fits.
func (b *budget) acquire(size int64) {
	b.mu.Lock()
	for b.n >= b.maxN || b.bytes+size > b.maxB {
		b.cond.Wait()
	}
	b.n++
	b.bytes += size
	b.mu.Unlock()
}

func (b *budget) release(size int64) {
	b.mu.Lock()
	b.n--
	b.bytes -= size
	b.mu.Unlock()
	b.cond.Broadcast()
}

// Request buffers are pooled by power-of-two size classes, from 4 KiB to
// maxRequest.
const minBufShift = 12

var bufPools [26 - minBufShift + 1]sync.Pool

func bufClass(n int) int {
	c := 0
	for 1<<(minBufShift+c) < n {
		c++
	}
	return c
}

func getBuf(n int) []byte {
	if v, ok := bufPools[bufClass(n)].Get().(*[]byte); ok {
		return (*v)[:n]
	}
	return make([]byte, n, 1<<(minBufShift+bufClass(n)))
}

func putBuf(p []byte) {
	c := bufClass(cap(p))
	if cap(p) != 1<<(minBufShift+c) {
		return
	}
	p = p[:cap(p)]
	bufPools[c].Put(&p)
}

// gauge counts bytes in use and remembers the most ever in use.
type gauge struct{ cur, peak atomic.Int64 }

func (g *gauge) add(n int64) {
	v := g.cur.Add(n)
	for p := g.peak.Load(); v > p && !g.peak.CompareAndSwap(p, v); p = g.peak.Load() {
	}
}
