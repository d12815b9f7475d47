package nbdserver

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os/exec"
	"strconv"
	"testing"
	"time"
)

const benchSize = 64 << 20

// BenchmarkSequentialRead reads a 64 MiB image (in the page cache) from
// start to end: with nbdcopy (1 or 4 connections, 64 requests of 256 KiB in
// flight each) through backy-nbd and, for comparison, through qemu-nbd
// serving the same file; and with the in-process client at one request at a
// time, which shows the per-request cost.
//
//	go test -run '^$' -bench 'SequentialRead//nbdcopy' -benchtime 10x ./pkg/nbdserver
//	go test -run '^$' -bench 'SequentialRead//go-client' ./pkg/nbdserver
func BenchmarkSequentialRead(b *testing.B) {
	path, _ := makeImage(b, b.TempDir(), "img", benchSize, 1)
	cat := newFileCatalog()
	cat.add("img", path, "")
	addr := startServer(b, cat, Options{Logger: slog.New(slog.DiscardHandler)})

	for _, conns := range []int{1, 4} {
		b.Run(fmt.Sprintf("backy-nbd/nbdcopy-%dconn", conns), func(b *testing.B) {
			nbdcopy := needTool(b, "nbdcopy", "libnbd-bin")
			benchNbdcopy(b, nbdcopy, conns, nbdURI(addr, "img"))
		})
		b.Run(fmt.Sprintf("qemu-nbd/nbdcopy-%dconn", conns), func(b *testing.B) {
			nbdcopy := needTool(b, "nbdcopy", "libnbd-bin")
			qemuNBD := needTool(b, "qemu-nbd", "qemu-utils")
			benchNbdcopy(b, nbdcopy, conns, startQemuNBD(b, qemuNBD, path))
		})
	}
	for _, req := range []uint32{4 << 10, 256 << 10} {
		b.Run(fmt.Sprintf("backy-nbd/go-client-%dk", req>>10), func(b *testing.B) {
			rc := dialRaw(b, addr)
			if typ, msg, err := rc.goExport("img"); err != nil || typ != repAck {
				b.Fatal(typ, msg, err)
			}
			b.SetBytes(int64(req))
			b.ResetTimer()
			off := uint64(0)
			for b.Loop() {
				if _, errno, err := rc.read(off, req); err != nil || errno != 0 {
					b.Fatal(errno, err)
				}
				off = (off + uint64(req)) % benchSize
			}
		})
	}
}

func benchNbdcopy(b *testing.B, nbdcopy string, conns int, uri string) {
	b.SetBytes(benchSize)
	for b.Loop() {
		if out, err := exec.Command(nbdcopy, "--connections="+strconv.Itoa(conns), uri, "null:").CombinedOutput(); err != nil {
			b.Fatalf("nbdcopy: %v: %s", err, out)
		}
	}
}

// startQemuNBD serves path read-only with qemu-nbd on a free loopback port.
func startQemuNBD(b *testing.B, qemuNBD, path string) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, qemuNBD, "-r", "-t", "-e", "8", "-f", "raw", "-x", "img",
		"-b", "127.0.0.1", "-p", strconv.Itoa(port), path)
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cancel(); cmd.Wait() })
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			b.Fatal("qemu-nbd did not start listening")
		}
	}
	return nbdURI(addr, "img")
}
