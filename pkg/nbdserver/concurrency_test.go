package nbdserver

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"
	"time"
)

// pending is a request sent but not yet answered.
type pending struct {
	typ    uint16
	off    uint64
	length uint32
}

// collect reads the simple replies of the requests in want, in whatever
// order they come, and returns the handles in arrival order with each
// read's data (nil for a failed one, whose errno is in errnos).
func (rc *rawClient) collect(want map[uint64]pending) (order []uint64, data map[uint64][]byte, errnos map[uint64]uint32, err error) {
	data, errnos = map[uint64][]byte{}, map[uint64]uint32{}
	for len(order) < len(want) {
		var h [16]byte
		if _, err := io.ReadFull(rc.r, h[:]); err != nil {
			return order, data, errnos, err
		}
		if binary.BigEndian.Uint32(h[0:4]) != simpleReplyMagic {
			return order, data, errnos, fmt.Errorf("bad reply magic % x", h)
		}
		handle := binary.BigEndian.Uint64(h[8:16])
		p, ok := want[handle]
		if !ok || slices.Contains(order, handle) {
			return order, data, errnos, fmt.Errorf("reply for unknown or answered handle %d", handle)
		}
		order = append(order, handle)
		if errnos[handle] = binary.BigEndian.Uint32(h[4:8]); errnos[handle] == 0 && p.typ == cmdRead {
			data[handle] = make([]byte, p.length)
			if _, err := io.ReadFull(rc.r, data[handle]); err != nil {
				return order, data, errnos, err
			}
		}
	}
	return order, data, errnos, nil
}

// TestConcurrentRequests: the requests of one connection are served at
// once, and a quick one is answered before a slow one sent earlier.
func TestConcurrentRequests(t *testing.T) {
	cat, addr, d1 := protoSetup(t, Options{})
	const n, step = 8, 40 * time.Millisecond
	slow := func(off int64) time.Duration { return time.Duration(n-off>>20) * step } // the first is slowest
	cat.slow.Store(&slow)
	rc := dialRaw(t, addr)
	if typ, _, err := rc.goExport("aaaa1111"); err != nil || typ != repAck {
		t.Fatal(typ, err)
	}
	want := map[uint64]pending{}
	start := time.Now()
	for i := range n {
		off := uint64(i) << 20 / 3 // offsets below 3 MiB: reads take (8 - MiB) steps
		h, err := rc.send(cmdRead, off, 4096, nil)
		if err != nil {
			t.Fatal(err)
		}
		want[h] = pending{cmdRead, off, 4096}
	}
	order, data, errnos, err := rc.collect(want)
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	for h, p := range want {
		if errnos[h] != 0 || !bytes.Equal(data[h], d1[p.off:p.off+4096]) {
			t.Errorf("read %d at %d: errno %d, right bytes %v", h, p.off, errnos[h], bytes.Equal(data[h], d1[p.off:p.off+4096]))
		}
	}
	// One at a time would take the sum of the delays (8+8+8+7+7+7+6+6
	// steps), at once about the longest (8 steps).
	if took > 30*step {
		t.Errorf("%d reads took %v: not served concurrently", n, took)
	}
	if slices.IsSorted(order) {
		t.Errorf("replies came in request order %v; the slow first read should have come last", order)
	}
}

// TestDisconnectInFlight: clients that hang up with requests in flight
// leave no goroutine and no open export behind, and the server serves the
// next client.
func TestDisconnectInFlight(t *testing.T) {
	cat, addr, d1 := protoSetup(t, Options{})
	slow := func(int64) time.Duration { return 20 * time.Millisecond }
	cat.slow.Store(&slow)
	settle := func(limit int) int {
		n := runtime.NumGoroutine()
		for deadline := time.Now().Add(10 * time.Second); n > limit && time.Now().Before(deadline); n = runtime.NumGoroutine() {
			time.Sleep(10 * time.Millisecond)
		}
		return n
	}
	time.Sleep(50 * time.Millisecond)
	base := runtime.NumGoroutine()
	for round := range 3 {
		rc := dialRaw(t, addr)
		if typ, _, err := rc.goExport("aaaa1111"); err != nil || typ != repAck {
			t.Fatal(typ, err)
		}
		for i := range 3 * maxInFlight { // more than are served at once
			if _, err := rc.send(cmdRead, uint64(i)*65536%(3<<20), 65536, nil); err != nil {
				t.Fatal(err)
			}
		}
		if round == 1 { // one reply read, the rest left
			if _, err := io.ReadFull(rc.r, make([]byte, 16+65536)); err != nil {
				t.Fatal(err)
			}
		}
		rc.c.Close()
	}
	if n := settle(base); n > base {
		buf := make([]byte, 1<<20)
		t.Errorf("%d goroutines after the clients left, %d before:\n%s", n, base, buf[:runtime.Stack(buf, true)])
	}
	for deadline := time.Now().Add(5 * time.Second); cat.open.Load() != 0 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if n := cat.open.Load(); n != 0 {
		t.Errorf("%d exports still open after the clients left", n)
	}
	cat.slow.Store(nil)
	rc := dialRaw(t, addr)
	if typ, _, err := rc.goExport("aaaa1111"); err != nil || typ != repAck {
		t.Fatal(typ, err)
	}
	if got, errno, err := rc.read(12345, 70000); err != nil || errno != 0 || !bytes.Equal(got, d1[12345:12345+70000]) {
		t.Errorf("read after the disconnects: errno %d, err %v", errno, err)
	}
}

// TestCOWOverlapping sends batches of writes and reads to a COW export
// without waiting for replies. The ranges of a batch do not overlap, but
// they share 4 KiB blocks, so writes copy-on-write the blocks other
// requests of the batch read or write at the same time. Every read must
// see the data as it was before its batch, and in the end the export must
// read as the model.
func TestCOWOverlapping(t *testing.T) {
	_, addr, d1 := protoSetup(t, Options{COW: true})
	rc := dialRaw(t, addr)
	if typ, _, err := rc.goExport("aaaa1111"); err != nil || typ != repAck {
		t.Fatal(typ, err)
	}
	const region = 64 << 10
	model := bytes.Clone(d1)
	r := rand.New(rand.NewPCG(5, 6))
	for batch := range 30 {
		cuts := []int{0, region}
		for range 15 {
			cuts = append(cuts, r.IntN(region))
		}
		slices.Sort(cuts)
		cuts = slices.Compact(cuts)
		want := map[uint64]pending{}
		var writes []pending
		for i := 0; i+1 < len(cuts); i++ {
			off, n := uint64(cuts[i]), uint32(cuts[i+1]-cuts[i])
			if r.IntN(2) == 0 {
				h, err := rc.send(cmdRead, off, n, nil)
				if err != nil {
					t.Fatal(err)
				}
				want[h] = pending{cmdRead, off, n}
				continue
			}
			p := bytes.Repeat([]byte{byte(batch*16 + i)}, int(n))
			h, err := rc.send(cmdWrite, off, n, p)
			if err != nil {
				t.Fatal(err)
			}
			want[h] = pending{cmdWrite, off, n}
			writes = append(writes, pending{uint16(byte(batch*16 + i)), off, n}) // typ: the pattern
		}
		_, data, errnos, err := rc.collect(want)
		if err != nil {
			t.Fatal(err)
		}
		for h, p := range want {
			if errnos[h] != 0 {
				t.Fatalf("batch %d: request %+v failed with errno %d", batch, p, errnos[h])
			}
			if p.typ == cmdRead && !bytes.Equal(data[h], model[p.off:p.off+uint64(p.length)]) {
				t.Fatalf("batch %d: read of %d bytes at %d differs from the model at %d", batch, p.length, p.off,
					int(p.off)+firstDiff(data[h], model[p.off:]))
			}
		}
		for _, w := range writes {
			for i := w.off; i < w.off+uint64(w.length); i++ {
				model[i] = byte(w.typ)
			}
		}
	}
	got, errno, err := rc.read(0, 2*region)
	if err != nil || errno != 0 || !bytes.Equal(got, model[:2*region]) {
		t.Errorf("final read: errno %d, err %v, differs at %d", errno, err, firstDiff(got, model))
	}
}

// TestRequestPanic: a request whose export panics ends its connection, not
// the server.
func TestRequestPanic(t *testing.T) {
	cat, addr, d1 := protoSetup(t, Options{})
	boom := func(off int64) time.Duration {
		if off == 4096 {
			panic("test: boom")
		}
		return 0
	}
	cat.slow.Store(&boom)
	rc := dialRaw(t, addr)
	if typ, _, err := rc.goExport("aaaa1111"); err != nil || typ != repAck {
		t.Fatal(typ, err)
	}
	if _, err := rc.send(cmdRead, 4096, 10, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := rc.r.ReadByte(); err == nil {
		t.Error("the connection carried on after its request panicked")
	}
	rc = dialRaw(t, addr)
	if typ, _, err := rc.goExport("aaaa1111"); err != nil || typ != repAck {
		t.Fatal(typ, err)
	}
	if got, errno, err := rc.read(0, 4096); err != nil || errno != 0 || !bytes.Equal(got, d1[:4096]) {
		t.Errorf("read on the next connection: errno %d, err %v", errno, err)
	}
}
