package nbdserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fileCatalog is a Catalog over plain image files, standing in for the
// repository in these tests. Names resolve like revision specs: an exact id,
// "latest" (and "") for the last one added, or a unique id prefix.
type fileCatalog struct {
	mu     sync.Mutex
	ids    []string
	files  map[string]string
	descs  map[string]string
	faults map[string][2]int64 // id -> [offset, length) that fails to read
	open   atomic.Int64
	opens  atomic.Int64
	// slow, if set, says how long a read at off takes.
	slow atomic.Pointer[func(off int64) time.Duration]
}

func newFileCatalog() *fileCatalog {
	return &fileCatalog{files: map[string]string{}, descs: map[string]string{}, faults: map[string][2]int64{}}
}

func (c *fileCatalog) add(id, path, desc string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ids = append(c.ids, id)
	c.files[id] = path
	c.descs[id] = desc
}

func (c *fileCatalog) fault(id string, off, n int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.faults[id] = [2]int64{off, n}
}

func (c *fileCatalog) List() ([]ExportInfo, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []ExportInfo
	for _, id := range c.ids {
		out = append(out, ExportInfo{Name: id, Description: c.descs[id]})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func (c *fileCatalog) resolve(name string) (string, error) {
	if name == "" || name == "latest" {
		if len(c.ids) == 0 {
			return "", fmt.Errorf("%w: %q", ErrNotFound, name)
		}
		return c.ids[len(c.ids)-1], nil
	}
	if _, ok := c.files[name]; ok {
		return name, nil
	}
	var found []string
	for _, id := range c.ids {
		if strings.HasPrefix(id, name) {
			found = append(found, id)
		}
	}
	if len(found) != 1 {
		return "", fmt.Errorf("%w: %q", ErrNotFound, name)
	}
	return found[0], nil
}

func (c *fileCatalog) Open(name string) (Export, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	id, err := c.resolve(name)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(c.files[id])
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	c.open.Add(1)
	c.opens.Add(1)
	e := &fileExport{f: f, id: id, size: fi.Size(), desc: c.descs[id], cat: c, fault: [2]int64{-1, 0}}
	if fl, ok := c.faults[id]; ok {
		e.fault = fl
	}
	return e, nil
}

var errInjected = errors.New("test: corrupt chunk")

type fileExport struct {
	f      *os.File
	id     string
	size   int64
	desc   string
	cat    *fileCatalog
	fault  [2]int64
	closed atomic.Bool
}

func (e *fileExport) ReadAt(p []byte, off int64) (int, error) {
	if slow := e.cat.slow.Load(); slow != nil {
		time.Sleep((*slow)(off))
	}
	if e.fault[0] >= 0 && off < e.fault[0]+e.fault[1] && off+int64(len(p)) > e.fault[0] {
		return 0, fmt.Errorf("%w at offset %d", errInjected, e.fault[0])
	}
	return e.f.ReadAt(p, off)
}

func (e *fileExport) Size() int64           { return e.size }
func (e *fileExport) Description() string   { return e.desc }
func (e *fileExport) CanonicalName() string { return e.id }

func (e *fileExport) Close() error {
	if e.closed.Swap(true) {
		return errors.New("test: export closed twice")
	}
	e.cat.open.Add(-1)
	return e.f.Close()
}

// testLogWriter sends the server's log to the test log.
type testLogWriter struct{ t testing.TB }

func (w testLogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// startServer serves cat on a loopback port until the test ends, then checks
// that Serve stopped cleanly and every export was closed.
func startServer(t testing.TB, cat *fileCatalog, opts Options) string {
	t.Helper()
	_, addr := startServerOf(t, cat, opts)
	return addr
}

// startServerOf is startServer that also returns the Server.
func startServerOf(t testing.TB, cat *fileCatalog, opts Options) (*Server, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(testLogWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if opts.TempDir == "" {
		opts.TempDir = t.TempDir()
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	srv := New(cat, opts)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Serve did not stop within 10s of cancel")
		}
		if n := cat.open.Load(); n != 0 {
			t.Errorf("%d exports still open after Serve returned", n)
		}
	})
	return srv, ln.Addr().String()
}

// needTool returns the path of a client binary, skipping the test if it is
// missing, or failing it when BACKY_REQUIRE_TOOLS=1.
func needTool(t testing.TB, bin, pkg string) string {
	t.Helper()
	path, err := exec.LookPath(bin)
	if err == nil {
		return path
	}
	for _, dir := range []string{"/usr/sbin", "/sbin"} { // e2fsprogs, for non-root PATHs
		if path, err := exec.LookPath(filepath.Join(dir, bin)); err == nil {
			return path
		}
	}
	if os.Getenv("BACKY_REQUIRE_TOOLS") == "1" {
		t.Fatalf("%s not found (Debian package %s) and BACKY_REQUIRE_TOOLS=1", bin, pkg)
	}
	t.Skipf("%s not found: install the Debian package %s", bin, pkg)
	return ""
}

// makeImage writes a file of pseudo-random data with some zero stretches and
// a size that is not a multiple of 4 KiB.
func makeImage(t testing.TB, dir, name string, size int64, seed uint64) (string, []byte) {
	t.Helper()
	data := make([]byte, size)
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)})
	r.Read(data)
	for off := int64(1 << 20); off+256<<10 < size; off += 3 << 20 {
		clear(data[off : off+256<<10])
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path, data
}

func nbdURI(addr, export string) string {
	return "nbd://" + addr + "/" + export
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

var _ io.ReaderAt = (*fileExport)(nil)

func startLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testLogWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
