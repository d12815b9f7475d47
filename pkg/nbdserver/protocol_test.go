package nbdserver

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/backy/backy/internal/logtest"
)

func protoSetup(t *testing.T, opts Options) (*fileCatalog, string, []byte) {
	dir := t.TempDir()
	cat := newFileCatalog()
	p1, d1 := makeImage(t, dir, "r1", 3<<20+123, 1)
	p2, _ := makeImage(t, dir, "r2", 1<<20, 2)
	cat.add("aaaa1111", p1, "first revision")
	cat.add("bbbb2222", p2, "second revision")
	return cat, startServer(t, cat, opts), d1
}

// TestProtocolFlags: multi-conn only for a read-only export named by its
// canonical name; NBD_INFO_NAME carries that name whatever the client typed.
func TestProtocolFlags(t *testing.T) {
	for _, tc := range []struct {
		cow  bool
		name string
		want uint16
	}{
		{false, "aaaa1111", flagHasFlags | flagReadOnly | flagCanMultiConn},
		{false, "aaaa", flagHasFlags | flagReadOnly},
		{false, "latest", flagHasFlags | flagReadOnly},
		{false, "", flagHasFlags | flagReadOnly},
		{true, "aaaa1111", flagHasFlags | flagSendFlush},
		{true, "aaaa", flagHasFlags | flagSendFlush},
	} {
		cat, addr, _ := protoSetup(t, Options{COW: tc.cow})
		canon, err := cat.resolve(tc.name)
		if err != nil {
			t.Fatal(err)
		}
		rc := dialRaw(t, addr)
		typ, msg, err := rc.goExport(tc.name)
		if err != nil || typ != repAck {
			t.Fatalf("cow=%v %q: GO: type %#x %q %v", tc.cow, tc.name, typ, msg, err)
		}
		if rc.flags != tc.want || rc.name != canon {
			t.Errorf("cow=%v %q: flags %#x name %q, want %#x %q", tc.cow, tc.name, rc.flags, rc.name, tc.want, canon)
		}
	}
}

// TestProtocolMovingNameNoMultiConn is the review's case: two connections
// ask for "latest" and a revision is added between them. They get
// different images, so neither may claim multi-conn, and NBD_INFO_NAME
// tells them apart.
func TestProtocolMovingNameNoMultiConn(t *testing.T) {
	cat, addr, _ := protoSetup(t, Options{})
	a := dialRaw(t, addr)
	if typ, msg, err := a.goExport("latest"); err != nil || typ != repAck {
		t.Fatalf("GO A: %#x %q %v", typ, msg, err)
	}
	p3, _ := makeImage(t, t.TempDir(), "r3", 1<<20, 3)
	cat.add("cccc3333", p3, "third revision")
	b := dialRaw(t, addr)
	if typ, msg, err := b.goExport("latest"); err != nil || typ != repAck {
		t.Fatalf("GO B: %#x %q %v", typ, msg, err)
	}
	da, errno, err := a.read(0, 4096)
	if err != nil || errno != 0 {
		t.Fatal(errno, err)
	}
	db, errno, err := b.read(0, 4096)
	if err != nil || errno != 0 {
		t.Fatal(errno, err)
	}
	if bytes.Equal(da, db) {
		t.Fatal("test setup: both connections read the same bytes")
	}
	for _, c := range []*rawClient{a, b} {
		if c.flags&flagCanMultiConn != 0 {
			t.Errorf("latest (%s) advertises multi-conn: flags %#x", c.name, c.flags)
		}
	}
	if a.name != "bbbb2222" || b.name != "cccc3333" {
		t.Errorf("NBD_INFO_NAME %q and %q, want bbbb2222 and cccc3333", a.name, b.name)
	}
}

func TestProtocolList(t *testing.T) {
	_, addr, _ := protoSetup(t, Options{})
	rc := dialRaw(t, addr)
	rs, err := rc.opt(optList, nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range rs {
		if r.typ == repServer {
			n := binary.BigEndian.Uint32(r.data)
			got = append(got, string(r.data[4:4+n])+"="+string(r.data[4+n:]))
		}
	}
	want := []string{"aaaa1111=first revision", "bbbb2222=second revision"}
	if strings.Join(got, ",") != strings.Join(want, ",") || rs[len(rs)-1].typ != repAck {
		t.Errorf("list: %q (last reply %#x), want %q", got, rs[len(rs)-1].typ, want)
	}
}

func TestProtocolUnknownExport(t *testing.T) {
	cat, addr, d1 := protoSetup(t, Options{})
	rc := dialRaw(t, addr)
	// go-nbd remembers the export of an earlier INFO; a later GO for an
	// unknown name must still be refused.
	if rs, err := rc.opt(optInfo, goData("aaaa1111")); err != nil || rs[len(rs)-1].typ != repAck {
		t.Fatalf("INFO: %v %v", rs, err)
	}
	typ, msg, err := rc.goExport("nope")
	if err != nil {
		t.Fatal(err)
	}
	if typ != repErrUnknown || !strings.Contains(msg, "no such export") {
		t.Fatalf("GO nope: type %#x message %q", typ, msg)
	}
	if typ, msg, err := rc.goExport("aaaa1111"); err != nil || typ != repAck {
		t.Fatalf("GO after refusal: %#x %q %v", typ, msg, err)
	}
	got, errno, err := rc.read(0, 4096)
	if err != nil || errno != 0 || !bytes.Equal(got, d1[:4096]) {
		t.Fatalf("read: errno %d err %v", errno, err)
	}
	if n := cat.opens.Load(); n != 1 {
		t.Errorf("export opened %d times for INFO+GO of one name, want 1", n)
	}
}

func TestProtocolReadOnly(t *testing.T) {
	_, addr, d1 := protoSetup(t, Options{})
	rc := dialRaw(t, addr)
	if typ, _, err := rc.goExport("aaaa1111"); err != nil || typ != repAck {
		t.Fatal(typ, err)
	}
	if errno, err := rc.cmd(cmdWrite, 0, 4096, make([]byte, 4096)); err != nil || errno != errnoEPERM {
		t.Fatalf("write: errno %d, err %v; want EPERM", errno, err)
	}
	if errno, err := rc.cmd(cmdFlush, 0, 0, nil); err != nil || errno != 0 {
		t.Fatalf("flush: errno %d, err %v", errno, err)
	}
	// TRIM has a length but no payload; go-nbd alone would lose the
	// framing here.
	if errno, err := rc.cmd(4, 0, 1<<20, nil); err != nil || errno != errnoEINVAL {
		t.Fatalf("trim: errno %d, err %v; want EINVAL", errno, err)
	}
	if _, errno, err := rc.read(uint64(len(d1))-10, 20); err != nil || errno != errnoEINVAL {
		t.Fatalf("read past the end: errno %d, err %v; want EINVAL", errno, err)
	}
	got, errno, err := rc.read(5000, 70000)
	if err != nil || errno != 0 || !bytes.Equal(got, d1[5000:75000]) {
		t.Fatalf("read after refused requests: errno %d err %v", errno, err)
	}
	if _, err := rc.send(cmdDisc, 0, 0, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := rc.r.ReadByte(); err != io.EOF {
		t.Errorf("after NBD_CMD_DISC: %v, want EOF", err)
	}
}

func TestProtocolReadError(t *testing.T) {
	cat, addr, d1 := protoSetup(t, Options{})
	cat.fault("aaaa1111", 1<<20+100, 1)
	rc := dialRaw(t, addr)
	if typ, _, err := rc.goExport("aaaa1111"); err != nil || typ != repAck {
		t.Fatal(typ, err)
	}
	for i := 0; i < 3; i++ {
		if _, errno, err := rc.read(1<<20, 4096); err != nil || errno != errnoEIO {
			t.Fatalf("read over the fault: errno %d, err %v; want EIO", errno, err)
		}
		got, errno, err := rc.read(2<<20, 4096)
		if err != nil || errno != 0 || !bytes.Equal(got, d1[2<<20:2<<20+4096]) {
			t.Fatalf("read beside the fault: errno %d, err %v", errno, err)
		}
	}
}

func TestProtocolHostileOption(t *testing.T) {
	_, addr, _ := protoSetup(t, Options{})
	rc := dialRaw(t, addr)
	// A name length of 1 GiB: go-nbd alone would allocate it.
	if err := rc.sendOpt(optGo, binary.BigEndian.AppendUint32(nil, 1<<30)); err != nil {
		t.Fatal(err)
	}
	h := binary.BigEndian.AppendUint64(nil, optMagic)
	h = binary.BigEndian.AppendUint32(h, optInfo)
	h = binary.BigEndian.AppendUint32(h, 1<<30)
	// The server skips the data of an option over 64 KiB without keeping
	// it, so it waits for the 1 GiB, which never comes.
	rc = dialRaw(t, addr)
	rc.c.Write(h)
	rc.c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if _, err := rc.r.ReadByte(); err == nil {
		t.Fatal("server answered an option of 1 GiB before its data came")
	}
	rc.c.Close()
	rc = dialRaw(t, addr)
	if typ, _, err := rc.goExport("bbbb"); err != nil || typ != repAck {
		t.Fatalf("server unusable after hostile client: %#x %v", typ, err)
	}
}

func TestServeStopsWithClients(t *testing.T) {
	dir := t.TempDir()
	cat := newFileCatalog()
	p, _ := makeImage(t, dir, "r1", 1<<20, 1)
	cat.add("r1", p, "")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	srv := New(cat, Options{Logger: startLogger(t)})
	go func() { done <- srv.Serve(ctx, ln) }()
	idle := dialRaw(t, ln.Addr().String()) // still negotiating
	busy := dialRaw(t, ln.Addr().String())
	if typ, _, err := busy.goExport("r1"); err != nil || typ != repAck {
		t.Fatal(typ, err)
	}
	if _, errno, err := busy.read(0, 512); err != nil || errno != 0 {
		t.Fatal(errno, err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
	if n := cat.open.Load(); n != 0 {
		t.Errorf("%d exports open after Serve returned", n)
	}
	for _, rc := range []*rawClient{idle, busy} {
		if _, err := rc.r.ReadByte(); err == nil {
			t.Error("connection still open after Serve returned")
		}
	}
	if _, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		t.Error("listener still accepting after Serve returned")
	}
}

// TestProtocolServerErrors: an export the server cannot open (a catalog
// error, no room for a COW overlay) is not an unknown export: the client
// gets NBD_REP_ERR_POLICY with the reason, and the connection stays usable.
func TestProtocolServerErrors(t *testing.T) {
	cat, addr, _ := protoSetup(t, Options{})
	cat.mu.Lock()
	os.Remove(cat.files["bbbb2222"])
	cat.mu.Unlock()
	rc := dialRaw(t, addr)
	if typ, msg, err := rc.goExport("bbbb2222"); err != nil || typ != repErrPolicy || !strings.Contains(msg, "no such file or directory") {
		t.Errorf("GO of an export whose file is gone: type %#x %q %v, want NBD_REP_ERR_POLICY with the cause", typ, msg, err)
	}
	if typ, msg, err := rc.goExport("aaaa1111"); err != nil || typ != repAck {
		t.Fatalf("GO after the error: %#x %q %v", typ, msg, err)
	}

	_, addr, _ = protoSetup(t, Options{COW: true, TempDir: filepath.Join(t.TempDir(), "nosuch")})
	rc = dialRaw(t, addr)
	if typ, msg, err := rc.goExport("aaaa1111"); err != nil || typ != repErrPolicy || !strings.Contains(msg, "cow overlay") {
		t.Errorf("GO with no overlay: type %#x %q %v, want NBD_REP_ERR_POLICY with the cause", typ, msg, err)
	}
}

func TestCheckTempDir(t *testing.T) {
	dir := t.TempDir()
	if err := CheckTempDir(dir); err != nil {
		t.Fatal(err)
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "*")); len(m) != 0 {
		t.Errorf("CheckTempDir left %q", m)
	}
	if err := CheckTempDir(filepath.Join(dir, "nosuch")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("CheckTempDir of a missing directory: %v", err)
	}
}

// TestProtocolStrictness: the spec's SHOULDs a client never showed to need.
func TestProtocolStrictness(t *testing.T) {
	var logBuf logtest.Lines
	opts := Options{Logger: slog.New(slog.NewTextHandler(&logBuf, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	_, addr, _ := protoSetup(t, opts)

	t.Run("meta context of an unknown export", func(t *testing.T) {
		rc := dialRaw(t, addr)
		if rs, err := rc.opt(optStructuredReply, nil); err != nil || rs[0].typ != repAck {
			t.Fatal(rs, err)
		}
		for _, id := range []uint32{optListMetaContext, optSetMetaContext} {
			if rs, err := rc.opt(id, metaData("nosuch", metaAllocation)); err != nil || len(rs) != 1 || rs[0].typ != repErrUnknown {
				t.Errorf("option %d for an unknown export: %+v %v, want NBD_REP_ERR_UNKNOWN alone", id, rs, err)
			}
			if rs, err := rc.opt(id, metaData("aaaa1111", metaAllocation)); err != nil || len(rs) != 2 || rs[0].typ != repMetaContext {
				t.Errorf("option %d for aaaa1111: %+v %v, want base:allocation", id, rs, err)
			}
		}

	})
	t.Run("option over 64 KiB", func(t *testing.T) {
		rc := dialRaw(t, addr)
		if rs, err := rc.opt(optInfo, make([]byte, maxOptionLen+1)); err != nil || len(rs) != 1 || rs[0].typ != repErrTooBig {
			t.Errorf("option of %d bytes: %+v %v, want NBD_REP_ERR_TOO_BIG", maxOptionLen+1, rs, err)
		}
		if typ, msg, err := rc.goExport("aaaa1111"); err != nil || typ != repAck {
			t.Fatalf("GO after a big option: %#x %q %v", typ, msg, err)
		}

	})
	t.Run("client mistakes at debug level", func(t *testing.T) {
		rc := dialRaw(t, addr)
		if typ, msg, err := rc.goExport("aaaa1111"); err != nil || typ != repAck {
			t.Fatalf("GO: %#x %q %v", typ, msg, err)
		}
		if errno, err := rc.cmd(cmdWrite, 0, 1, []byte{0}); err != nil || errno != errnoEPERM {
			t.Fatalf("write on a read-only export: errno %d %v", errno, err)
		}
		if _, errno, err := rc.read(1<<40, 512); err != nil || errno != errnoEINVAL {
			t.Fatalf("read past the end: errno %d %v", errno, err)
		}
		if s := logBuf.String(); !strings.Contains(s, `level=DEBUG msg="request failed"`) || strings.Contains(s, "level=ERROR") {
			t.Errorf("client mistakes must be logged at debug level, not as errors:\n%s", s)
		}

	})
	t.Run("unknown client flags", func(t *testing.T) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.ReadFull(c, make([]byte, 18)); err != nil {
			t.Fatal(err)
		}
		c.Write([]byte{0, 0, 0, 0xff})
		c.Write(binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint64(nil, optMagic), optList), 0))
		if n, err := io.ReadFull(c, make([]byte, 20)); err == nil {
			t.Errorf("client flags 0xff: the server answered an option (%d bytes)", n)
		}
	})
}
