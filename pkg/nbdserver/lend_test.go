package nbdserver

import (
	"bytes"
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// lendingCatalog wraps a fileCatalog so its exports are Lenders that lend
// each read in two parts and count the lends still unreleased.
type lendingCatalog struct {
	*fileCatalog
	lends, held atomic.Int64
}

type lendingExport struct {
	*fileExport
	cat *lendingCatalog
}

func (c *lendingCatalog) Open(name string) (Export, error) {
	e, err := c.fileCatalog.Open(name)
	if err != nil {
		return nil, err
	}
	return lendingExport{e.(*fileExport), c}, nil
}

func (e lendingExport) Lend(parts [][]byte, off int64, n int) ([][]byte, func(), error) {
	p := make([]byte, n)
	if err := readFull(e.fileExport, p, off); err != nil {
		return nil, nil, err
	}
	e.cat.lends.Add(1)
	e.cat.held.Add(1)
	var once atomic.Bool
	return append(parts, p[:n/2], p[n/2:]), func() {
		if once.Swap(true) {
			panic("released twice")
		}
		e.cat.held.Add(-1)
	}, nil
}

// TestLender: reads of a Lender export are sent from the lent parts, in
// simple and structured replies, holes included, and every lend is
// released; a failed lend is an error reply; under COW the overlay reads
// instead.
func TestLender(t *testing.T) {
	dir := t.TempDir()
	fc := newFileCatalog()
	p, data := makeImage(t, dir, "r1", 3<<20+123, 1) // zeros at [1 MiB, 1.25 MiB)
	fc.add("aaaa1111", p, "")
	fc.fault("aaaa1111", 2<<20+5, 1)
	cat := &lendingCatalog{fileCatalog: fc}
	serve := func(opts Options) string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		opts.Logger, opts.TempDir = startLogger(t), t.TempDir()
		go func() { done <- New(cat, opts).Serve(ctx, ln) }()
		t.Cleanup(func() { cancel(); <-done })
		return ln.Addr().String()
	}
	addr := serve(Options{})

	rc := dialRaw(t, addr)
	if typ, msg, err := rc.goExport("aaaa1111"); err != nil || typ != repAck {
		t.Fatalf("GO: %#x %q %v", typ, msg, err)
	}
	if got, errno, err := rc.read(1000, 300000); err != nil || errno != 0 || !bytes.Equal(got, data[1000:301000]) {
		t.Fatalf("simple read: %d %v", errno, err)
	}
	if _, errno, err := rc.read(2<<20, 8192); err != nil || errno != errnoEIO {
		t.Fatalf("failed lend: errno %d, %v", errno, err)
	}
	src := structuredGo(t, addr, "aaaa1111")
	for _, tc := range []struct{ off, n uint32 }{{1<<20 + 4096, 65536}, {1<<20 - 10, 100}, {3 << 20, 123}} {
		got, errno, err := structuredRead(src, uint64(tc.off), tc.n)
		if err != nil || errno != 0 {
			t.Fatalf("structured read %d+%d: %d %v", tc.off, tc.n, errno, err)
		}
		if tc.off == 1<<20+4096 {
			if len(got) != 4 { // a hole: only its length follows the offset
				t.Errorf("read inside the zeros: %d bytes of payload, want a hole", len(got))
			}
			continue
		}
		if !bytes.Equal(got, data[tc.off:tc.off+tc.n]) {
			t.Errorf("structured read %d+%d: wrong bytes", tc.off, tc.n)
		}
	}
	if n := cat.lends.Load(); n != 4 {
		t.Errorf("%d lends, want 4 (the successful reads)", n)
	}
	// A reply is released just after it is sent, so maybe after the
	// client has read it.
	for deadline := time.Now().Add(5 * time.Second); cat.held.Load() != 0 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	if n := cat.held.Load(); n != 0 {
		t.Errorf("%d lends not released", n)
	}

	// COW: the overlay reads through ReadAt, and writes show.
	lends := cat.lends.Load()
	cow := dialRaw(t, serve(Options{COW: true}))
	if typ, msg, err := cow.goExport("aaaa1111"); err != nil || typ != repAck {
		t.Fatalf("GO: %#x %q %v", typ, msg, err)
	}
	if errno, err := cow.cmd(cmdWrite, 4096, 5, []byte("hello")); err != nil || errno != 0 {
		t.Fatalf("write: %d %v", errno, err)
	}
	want := append(append(bytes.Clone(data[:4096]), "hello"...), data[4101:8192]...)
	if got, errno, err := cow.read(0, 8192); err != nil || errno != 0 || !bytes.Equal(got, want) {
		t.Errorf("cow read: %d %v", errno, err)
	}
	if n := cat.lends.Load(); n != lends {
		t.Errorf("a COW connection lent %d times", n-lends)
	}
}
