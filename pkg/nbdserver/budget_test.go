package nbdserver

import (
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestBufferBudget is the review's attack on memory: many connections each
// send big reads and never read a reply (a tiny receive buffer), so every
// reply's buffer stays pinned. The request buffers of all connections
// together stay within Options.BufferBytes, however many connections do
// this, and the server still stops at once.
func TestBufferBudget(t *testing.T) {
	path := filepath.Join(t.TempDir(), "zeros")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, 64<<20); err != nil {
		t.Fatal(err)
	}
	cat := newFileCatalog()
	cat.add("img", path, "")
	const budget = 128 << 20
	srv, addr := startServerOf(t, cat, Options{BufferBytes: budget, Logger: slog.New(slog.DiscardHandler)})
	const conns, reads = 12, 8
	for range conns {
		rc := dialRaw(t, addr)
		if err := rc.c.(*net.TCPConn).SetReadBuffer(4096); err != nil {
			t.Fatal(err)
		}
		if typ, msg, err := rc.goExport("img"); err != nil || typ != repAck {
			t.Fatalf("GO: %#x %q %v", typ, msg, err)
		}
		for j := range reads {
			if _, err := rc.send(cmdRead, uint64(j%2)*32<<20, 32<<20, nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Wait until the buffers in use stop growing.
	last, still := int64(-1), 0
	for deadline := time.Now().Add(10 * time.Second); still < 10 && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
		if p := srv.bufs.peak.Load(); p == last {
			still++
		} else {
			last, still = p, 0
		}
	}
	peak := srv.bufs.peak.Load()
	t.Logf("%d connections × %d reads of 32 MiB, replies unread: request buffers peaked at %d MiB (budget %d MiB)",
		conns, reads, peak>>20, budget>>20)
	if peak > budget {
		t.Errorf("request buffers peaked at %d MiB, over the budget of %d MiB", peak>>20, budget>>20)
	}
	if peak < 2*maxRequest {
		t.Errorf("request buffers peaked at %d MiB: the test did not fill the budget", peak>>20)
	}
}
