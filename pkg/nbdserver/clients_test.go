package nbdserver

// Tests with real NBD clients: libnbd's nbdinfo, nbdcopy and nbdfuse
// (Debian libnbd-bin, nbdfuse), qemu-img and qemu-io (qemu-utils), and
// e2fsprogs' mke2fs and debugfs. Missing tools skip the test, or fail it when
// BACKY_REQUIRE_TOOLS=1.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/backy/backy/internal/nbdtest"
)

type clientSetup struct {
	cat  *fileCatalog
	addr string
	dir  string
	data map[string][]byte
	path map[string]string
}

// setupClients serves three revisions: r1 (12 MiB plus an odd tail), r2 and
// r3 (latest), each with different content.
func setupClients(t *testing.T, opts Options) *clientSetup {
	t.Helper()
	cs := &clientSetup{cat: newFileCatalog(), dir: t.TempDir(), data: map[string][]byte{}, path: map[string]string{}}
	for i, id := range []string{"1111aaaa", "2222bbbb", "3333cccc"} {
		p, d := makeImage(t, cs.dir, id+".img", int64(12<<20+i*4096+777*(1-i%2)), uint64(i+10))
		cs.cat.add(id, p, fmt.Sprintf("revision %d", i+1))
		cs.data[id], cs.path[id] = d, p
	}
	cs.addr = startServer(t, cs.cat, opts)
	return cs
}

func TestNbdinfo(t *testing.T) {
	nbdinfo := needTool(t, "nbdinfo", "libnbd-bin")
	cs := setupClients(t, Options{})
	for name, id := range map[string]string{"1111aaaa": "1111aaaa", "2222": "2222bbbb", "latest": "3333cccc", "": "3333cccc"} {
		out := mustRun(t, nbdinfo, "--size", nbdURI(cs.addr, name))
		if got := strings.TrimSpace(out); got != strconv.Itoa(len(cs.data[id])) {
			t.Errorf("nbdinfo --size %q: %s, want %d", name, got, len(cs.data[id]))
		}
	}

	var info struct {
		Exports []struct {
			Name     string `json:"export-name"`
			Desc     string `json:"description"`
			Size     int64  `json:"export-size"`
			ReadOnly bool   `json:"is_read_only"`
		} `json:"exports"`
	}
	out := mustRun(t, nbdinfo, "--list", "--json", "nbd://"+cs.addr)
	if err := json.Unmarshal([]byte(out), &info); err != nil {
		t.Fatalf("nbdinfo --list --json: %v\n%s", err, out)
	}
	var got []string
	for _, e := range info.Exports {
		got = append(got, fmt.Sprintf("%s %q %d ro=%v", e.Name, e.Desc, e.Size, e.ReadOnly))
	}
	var want []string
	for i, id := range []string{"1111aaaa", "2222bbbb", "3333cccc"} {
		want = append(want, fmt.Sprintf("%s %q %d ro=true", id, fmt.Sprintf("revision %d", i+1), len(cs.data[id])))
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("nbdinfo --list:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestNbdcopy(t *testing.T) {
	nbdcopy := needTool(t, "nbdcopy", "libnbd-bin")
	cs := setupClients(t, Options{})
	out := filepath.Join(t.TempDir(), "out.img")
	mustRun(t, nbdcopy, nbdURI(cs.addr, "1111aaaa"), out)
	sameFile(t, cs.data["1111aaaa"], out)
	// Through a revision spec, with small requests and one connection.
	mustRun(t, nbdcopy, "--connections=1", "--request-size=4096", nbdURI(cs.addr, "latest"), out)
	sameFile(t, cs.data["3333cccc"], out)
}

func TestQemuImgCompare(t *testing.T) {
	qemuImg := needTool(t, "qemu-img", "qemu-utils")
	cs := setupClients(t, Options{})
	for id, p := range cs.path {
		if out, err := run(t, qemuImg, "compare", "-f", "raw", "-F", "raw", p, nbdURI(cs.addr, id)); err != nil {
			t.Errorf("qemu-img compare %s: %v\n%s", id, err, out)
		}
	}
	// A different revision must not compare equal (exit 1).
	_, err := run(t, qemuImg, "compare", "-f", "raw", "-F", "raw", cs.path["1111aaaa"], nbdURI(cs.addr, "2222bbbb"))
	if ee := (*exec.ExitError)(nil); !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Errorf("qemu-img compare of different revisions: %v, want exit 1", err)
	}
}

func TestQemuIORandomReads(t *testing.T) {
	qemuIO := needTool(t, "qemu-io", "qemu-utils")
	cs := setupClients(t, Options{})
	data := cs.data["1111aaaa"]
	r := rand.New(rand.NewPCG(3, 4))
	args := []string{"-r", "-f", "raw", nbdURI(cs.addr, "1111aaaa")}
	type span struct{ off, n int64 }
	var spans []span
	for range 40 {
		n := 1 + r.Int64N(20000)
		off := r.Int64N(int64(len(data)) - n)
		spans = append(spans, span{off, n})
		args = append(args, "-c", fmt.Sprintf("read -v %d %d", off, n))
	}
	// The last bytes of the image, which is not a multiple of 512.
	spans = append(spans, span{int64(len(data)) - 777, 777})
	args = append(args, "-c", fmt.Sprintf("read -v %d 777", len(data)-777))
	out := mustRun(t, qemuIO, args...)
	got := nbdtest.QemuIODump(out)
	for _, s := range spans {
		nbdtest.CheckDump(t, fmt.Sprintf("read %d+%d", s.off, s.n), got, s.off, s.n, data)
	}
	// Read-only: qemu-io opening for writing is refused.
	if _, err := run(t, qemuIO, "-f", "raw", "-c", "write 0 512", nbdURI(cs.addr, "1111aaaa")); err == nil {
		t.Error("qemu-io opened a read-only export for writing")
	}
}

func TestManyClients(t *testing.T) {
	nbdcopy := needTool(t, "nbdcopy", "libnbd-bin")
	qemuImg := needTool(t, "qemu-img", "qemu-utils")
	cs := setupClients(t, Options{})
	dir := t.TempDir()
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i, name := range []string{"1111aaaa", "2222", "latest", "1111aaaa", "3333cccc"} {
		wg.Add(2)
		go func() {
			defer wg.Done()
			out := filepath.Join(dir, fmt.Sprint(i))
			if _, err := run(t, nbdcopy, nbdURI(cs.addr, name), out); err != nil {
				errs <- err
				return
			}
			id, _ := cs.cat.resolve(name)
			if got, _ := os.ReadFile(out); !bytes.Equal(got, cs.data[id]) {
				errs <- fmt.Errorf("nbdcopy of %s differs from %s", name, id)
			}
		}()
		go func() {
			defer wg.Done()
			id, _ := cs.cat.resolve(name)
			if _, err := run(t, qemuImg, "compare", "-f", "raw", "-F", "raw", cs.path[id], nbdURI(cs.addr, name)); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestUnknownExportClients(t *testing.T) {
	nbdinfo := needTool(t, "nbdinfo", "libnbd-bin")
	qemuImg := needTool(t, "qemu-img", "qemu-utils")
	cs := setupClients(t, Options{})
	_, err := run(t, nbdinfo, nbdURI(cs.addr, "nope"))
	if err == nil || !strings.Contains(err.Error(), "No such file or directory for export: nope") {
		t.Errorf("nbdinfo of an unknown export: %v", err)
	}
	_, err = run(t, qemuImg, "info", nbdURI(cs.addr, "nope"))
	if err == nil || !strings.Contains(err.Error(), `server reported: nbdserver: no such export: "nope"`) {
		t.Errorf("qemu-img info of an unknown export: %v", err)
	}
}

func TestReadErrorClients(t *testing.T) {
	nbdcopy := needTool(t, "nbdcopy", "libnbd-bin")
	qemuIO := needTool(t, "qemu-io", "qemu-utils")
	qemuImg := needTool(t, "qemu-img", "qemu-utils")
	cs := setupClients(t, Options{})
	const bad = 5<<20 + 1234
	cs.cat.fault("2222bbbb", bad, 1)
	data := cs.data["2222bbbb"]
	uri := nbdURI(cs.addr, "2222bbbb")

	out := filepath.Join(t.TempDir(), "out.img")
	if _, err := run(t, nbdcopy, uri, out); err == nil || !strings.Contains(err.Error(), "Input/output error") {
		t.Errorf("nbdcopy over a bad chunk: %v, want an I/O error", err)
	}
	if _, err := run(t, qemuImg, "compare", "-f", "raw", "-F", "raw", cs.path["2222bbbb"], uri); err == nil {
		t.Error("qemu-img compare over a bad chunk succeeded")
	}
	// qemu-io gets EIO for the bad range and keeps its connection: the
	// reads around it still succeed, with the right bytes.
	stdout, err := run(t, qemuIO, "-r", "-f", "raw", uri,
		"-c", "read -v 0 4096",
		"-c", fmt.Sprintf("read -v %d 4096", bad-100),
		"-c", fmt.Sprintf("read -v %d 4096", bad+4096))
	if err == nil {
		t.Error("qemu-io exited 0 after a failed read")
	}
	if !strings.Contains(stdout, "read failed: Input/output error") {
		t.Errorf("qemu-io read over the bad chunk did not fail:\n%s", stdout)
	}
	got := nbdtest.QemuIODump(stdout)
	nbdtest.CheckDump(t, "before", got, 0, 4096, data)
	nbdtest.CheckDump(t, "after", got, bad+4096, 4096, data)
	for i := int64(bad - 100); i < bad-100+4096; i++ {
		if _, ok := got[i]; ok {
			t.Fatalf("qemu-io printed byte %d of a failed read", i)
		}
	}
}

func TestCOWQemuIO(t *testing.T) {
	qemuIO := needTool(t, "qemu-io", "qemu-utils")
	tmp := t.TempDir()
	cs := setupClients(t, Options{COW: true, TempDir: tmp})
	id := "1111aaaa"
	orig := bytes.Clone(cs.data[id])
	size := int64(len(orig))
	uri := nbdURI(cs.addr, id)
	model := bytes.Clone(orig)
	// Unaligned writes, one spanning blocks, one in the short last block.
	writes := []struct {
		off, n int64
		pat    byte
	}{{100, 5000, 0xab}, {8192, 4096, 0xcd}, {size - 500, 300, 0xef}}
	args := []string{"-f", "raw", uri}
	for _, w := range writes {
		args = append(args, "-c", fmt.Sprintf("write -P %#x %d %d", w.pat, w.off, w.n))
		for i := w.off; i < w.off+w.n; i++ {
			model[i] = w.pat
		}
	}
	args = append(args, "-c", "flush", "-c", "read -v 0 16384", "-c", fmt.Sprintf("read -v %d 4096", size-4096))
	stdout := mustRun(t, qemuIO, args...)
	got := nbdtest.QemuIODump(stdout)
	nbdtest.CheckDump(t, "after writes", got, 0, 16384, model)
	nbdtest.CheckDump(t, "after writes, tail", got, size-4096, 4096, model)

	// A new connection sees the revision as it is.
	stdout = mustRun(t, qemuIO, "-r", "-f", "raw", uri, "-c", "read -v 0 16384", "-c", fmt.Sprintf("read -v %d 4096", size-4096))
	got = nbdtest.QemuIODump(stdout)
	nbdtest.CheckDump(t, "reconnected", got, 0, 16384, orig)
	nbdtest.CheckDump(t, "reconnected, tail", got, size-4096, 4096, orig)

	sameFile(t, orig, cs.path[id])
	if ents, _ := os.ReadDir(tmp); len(ents) != 0 {
		t.Errorf("overlay files left in %s: %v", tmp, ents)
	}
}

// TestNbdfuseDebugfs is the file-restore story: an ext4 image served over
// NBD, mounted as a file with nbdfuse, a file pulled out with debugfs.
func TestNbdfuseDebugfs(t *testing.T) {
	mke2fs := needTool(t, "mke2fs", "e2fsprogs")
	debugfs := needTool(t, "debugfs", "e2fsprogs")
	nbdfuse := needTool(t, "nbdfuse", "nbdfuse")
	fusermount := needTool(t, "fusermount3", "fuse3")
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skipf("nbdfuse needs /dev/fuse: %v", err)
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	want := make([]byte, 300<<10+17)
	rand.NewChaCha8([32]byte{9}).Read(want)
	if err := os.MkdirAll(filepath.Join(src, "etc", "app"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "etc", "app", "data.bin"), want, 0o644); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(dir, "vm.img")
	if err := os.WriteFile(img, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 32<<20); err != nil {
		t.Fatal(err)
	}
	mustRun(t, mke2fs, "-q", "-F", "-t", "ext4", "-d", src, img)

	cat := newFileCatalog()
	cat.add("0123abcd", img, "vm disk")
	addr := startServer(t, cat, Options{})

	// Registered after startServer's cleanup, so it unmounts first.
	dev := nbdtest.MountFUSE(t, nbdfuse, fusermount, filepath.Join(dir, "mnt"), nbdURI(addr, "latest"), 32<<20)
	if fi, _ := os.Stat(dev); fi.Mode().Perm()&0o222 != 0 {
		t.Errorf("nbdfuse presents the read-only export as writable: %v", fi.Mode())
	}
	out := filepath.Join(dir, "restored.bin")
	mustRun(t, debugfs, "-R", "dump /etc/app/data.bin "+out, dev)
	sameFile(t, want, out)
}
