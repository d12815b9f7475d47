package main

// The one real-client test matrix of the NBD server: libnbd's nbdinfo,
// nbdcopy and nbdfuse (Debian libnbd-bin, nbdfuse), qemu-img and qemu-io
// (qemu-utils), e2fsprogs' mke2fs and debugfs, against backy-nbd serving a
// repository made by backy-extract | backy-store. The protocol details the
// clients do not show (flags, framing, out-of-order replies, clients that
// hang up with requests in flight) are tested in pkg/nbdserver with a raw
// client. A missing client skips the test naming its package, or fails it
// when BACKY_REQUIRE_TOOLS=1.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/backy/backy/internal/clitest"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/backy/backy/internal/nbdtest"
	"github.com/backy/backy/pkg/repo"
)

func fileSize(t *testing.T, p string) int64 {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

func TestNbdinfo(t *testing.T) {
	nbdinfo := needTool(t, "nbdinfo")
	f := getFixture(t)
	s := startServer(t, f.repo)
	for name, rev := range map[string]string{"": "new", "latest": "new", "0": "new", "1": "old", "daily": "old",
		f.id["old"]: "old", f.id["new"][:5]: "new"} {
		size := strconv.FormatInt(fileSize(t, f.img[rev]), 10)
		if got := strings.TrimSpace(mustRun(t, nbdinfo, "--size", s.uri(name))); got != size {
			t.Errorf("nbdinfo --size %q: %s, want %s", name, got, size)
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
	out := mustRun(t, nbdinfo, "--list", "--json", "nbd://"+s.addr)
	if err := json.Unmarshal([]byte(out), &info); err != nil {
		t.Fatalf("nbdinfo --list --json: %v\n%s", err, out)
	}
	if len(info.Exports) != 2 {
		t.Fatalf("nbdinfo --list shows %d exports, want 2:\n%s", len(info.Exports), out)
	}
	for i, rev := range []string{"old", "new"} {
		e := info.Exports[i]
		tags := "no tags"
		if rev == "old" {
			tags = "tags daily"
		}
		desc := regexp.MustCompile(`^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \S+, ` + tags + `, trusted, 40.0 MiB$`)
		if e.Name != f.id[rev] || !desc.MatchString(e.Desc) || e.Size != fileSize(t, f.img[rev]) || !e.ReadOnly {
			t.Errorf("export %d: %+v, want %s %q", i, e, f.id[rev], desc)
		}
	}

	// A backup made while the server runs is listed without a restart.
	repoDir := copyRepo(t, f)
	s2 := startServer(t, repoDir)
	id, err := pipeline(f.img["old"], repoDir)
	if err != nil {
		t.Fatal(err)
	}
	if out := mustRun(t, nbdinfo, "--list", "nbd://"+s2.addr); !strings.Contains(out, `export="`+id+`"`) {
		t.Errorf("new revision %s not listed:\n%s", id, out)
	}
}

func TestNbdcopyEqualsRestore(t *testing.T) {
	nbdcopy := needTool(t, "nbdcopy")
	f := getFixture(t)
	s := startServer(t, f.repo)
	dir := t.TempDir()
	for rev, spec := range map[string]string{"old": "daily", "new": ""} {
		out := filepath.Join(dir, rev+".img")
		mustRun(t, nbdcopy, s.uri(spec), out)
		sameFiles(t, out, f.restored[rev])
		sameFiles(t, out, f.img[rev])
	}
	// One connection, small requests.
	out := filepath.Join(dir, "small.img")
	mustRun(t, nbdcopy, "--connections=1", "--request-size=4096", s.uri(f.id["old"]), out)
	sameFiles(t, out, f.img["old"])
}

func TestQemuImgCompare(t *testing.T) {
	qemuImg := needTool(t, "qemu-img")
	f := getFixture(t)
	s := startServer(t, f.repo)
	for rev, img := range f.img {
		if _, err := client(t, qemuImg, "compare", "-f", "raw", "-F", "raw", img, s.uri(f.id[rev])); err != nil {
			t.Errorf("qemu-img compare %s: %v", rev, err)
		}
	}
	_, err := client(t, qemuImg, "compare", "-f", "raw", "-F", "raw", f.img["old"], s.uri("latest"))
	if ee := (*exec.ExitError)(nil); !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Errorf("qemu-img compare of different revisions: %v, want exit 1", err)
	}
}

func TestQemuIORandomReads(t *testing.T) {
	qemuIO := needTool(t, "qemu-io")
	f := getFixture(t)
	s := startServer(t, f.repo, "--cache-chunks", "2")
	data, err := os.ReadFile(f.img["old"])
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(3, 4))
	args := []string{"-r", "-f", "raw", s.uri("daily")}
	type span struct{ off, n int64 }
	var spans []span
	for range 40 {
		n := 1 + r.Int64N(20000)
		off := r.Int64N(int64(len(data)) - n)
		spans = append(spans, span{off, n})
		args = append(args, "-c", fmt.Sprintf("read -v %d %d", off, n))
	}
	// The last bytes of the image, which is no multiple of 512.
	spans = append(spans, span{int64(len(data)) - 777, 777})
	args = append(args, "-c", fmt.Sprintf("read -v %d 777", len(data)-777))
	got := nbdtest.QemuIODump(mustRun(t, qemuIO, args...))
	for _, sp := range spans {
		nbdtest.CheckDump(t, fmt.Sprintf("read %d+%d", sp.off, sp.n), got, sp.off, sp.n, data)
	}
	if _, err := client(t, qemuIO, "-f", "raw", "-c", "write 0 512", s.uri("latest")); err == nil {
		t.Error("qemu-io opened a read-only export for writing")
	}
}

func TestManyClients(t *testing.T) {
	nbdcopy := needTool(t, "nbdcopy")
	qemuImg := needTool(t, "qemu-img")
	f := getFixture(t)
	// A cache smaller than the clients' working set: entries are evicted
	// while other connections read them.
	s := startServer(t, f.repo, "--cache-chunks", "4")
	dir := t.TempDir()
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	specs := map[string]string{"daily": "old", "latest": "new", f.id["old"]: "old", f.id["new"][:4]: "new", "1": "old"}
	i := 0
	for spec, rev := range specs {
		i++
		out := filepath.Join(dir, strconv.Itoa(i))
		wg.Add(2)
		go func() {
			defer wg.Done()
			if _, err := client(t, nbdcopy, s.uri(spec), out); err != nil {
				errs <- err
				return
			}
			a, _ := os.ReadFile(out)
			b, _ := os.ReadFile(f.img[rev])
			if !bytes.Equal(a, b) {
				errs <- fmt.Errorf("nbdcopy of %q differs from revision %s", spec, rev)
			}
		}()
		go func() {
			defer wg.Done()
			if _, err := client(t, qemuImg, "compare", "-f", "raw", "-F", "raw", f.img[rev], s.uri(spec)); err != nil {
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

func TestUnknownExport(t *testing.T) {
	nbdinfo := needTool(t, "nbdinfo")
	qemuImg := needTool(t, "qemu-img")
	f := getFixture(t)
	s := startServer(t, f.repo)
	_, err := client(t, nbdinfo, s.uri("nosuch"))
	if err == nil || !strings.Contains(err.Error(), "No such file or directory for export: nosuch") {
		t.Errorf("nbdinfo of an unknown export: %v", err)
	}
	_, err = client(t, qemuImg, "info", s.uri("weekly"))
	if err == nil || !strings.Contains(err.Error(), `server reported: nbdserver: no such export: repo: no such revision "weekly"`) {
		t.Errorf("qemu-img info of an unknown export: %v", err)
	}
	_, err = client(t, qemuImg, "info", s.uri("7"))
	if err == nil || !strings.Contains(err.Error(), `no such revision "7": there are 2 revisions`) {
		t.Errorf("qemu-img info of revision 7 of 2: %v", err)
	}
	// The server carries on.
	mustRun(t, nbdinfo, "--size", s.uri("latest"))
}

// TestCorruptChunk flips a byte in a chunk file: every client gets an I/O
// error for the reads that touch it, never its bytes, and the rest of the
// image stays readable.
func TestCorruptChunk(t *testing.T) {
	nbdcopy := needTool(t, "nbdcopy")
	qemuIO := needTool(t, "qemu-io")
	qemuImg := needTool(t, "qemu-img")
	f := getFixture(t)
	repoDir := copyRepo(t, f)
	r, err := repo.Open(repoDir)
	if err != nil {
		t.Fatal(err)
	}
	ix, err := r.Index(f.id["new"])
	if err != nil {
		t.Fatal(err)
	}
	bad := ix.Hashes[0] // the superblock's chunk
	good := int64(-1)   // a chunk with other data
	for k, h := range ix.Hashes {
		if !h.IsZero() && h != bad {
			good = int64(k)
			break
		}
	}
	if err := clitest.FlipByte(filepath.Join(repoDir, "chunks", bad.String()[:2], bad.String())); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, repoDir)
	uri := s.uri(f.id["new"])

	if _, err := client(t, nbdcopy, uri, filepath.Join(t.TempDir(), "out")); err == nil || !strings.Contains(err.Error(), "Input/output error") {
		t.Errorf("nbdcopy over a corrupt chunk: %v, want an I/O error", err)
	}
	if _, err := client(t, qemuImg, "compare", "-f", "raw", "-F", "raw", f.img["new"], uri); err == nil {
		t.Error("qemu-img compare over a corrupt chunk succeeded")
	}
	data, _ := os.ReadFile(f.img["new"])
	goodOff := good*repo.ChunkSize + 1000
	stdout, err := client(t, qemuIO, "-r", "-f", "raw", uri,
		"-c", "read -v 1024 4096",
		"-c", fmt.Sprintf("read -v %d 4096", goodOff))
	if err == nil {
		t.Error("qemu-io exited 0 after a failed read")
	}
	if !strings.Contains(stdout, "read failed: Input/output error") {
		t.Errorf("qemu-io read of the corrupt chunk did not fail:\n%s", stdout)
	}
	got := nbdtest.QemuIODump(stdout)
	for i := int64(1024); i < 1024+4096; i++ {
		if _, ok := got[i]; ok {
			t.Fatalf("qemu-io printed byte %d of a failed read", i)
		}
	}
	nbdtest.CheckDump(t, "good chunk", got, goodOff, 4096, data)
	want := regexp.MustCompile(`level=ERROR msg="request failed" .*err=".*repo: corrupt chunk ` + bad.String() + `: .*\(revision ` + f.id["new"] + `, chunk 0 at offset 0\)"`)
	if !want.MatchString(s.logText()) {
		t.Errorf("the log does not name the chunk, revision and offset:\n%s", s.logText())
	}
}

// TestCOW: with --cow a client writes into its own overlay: it reads its
// writes back, the next connection sees the revision unchanged, and the
// repository is not touched.
func TestCOW(t *testing.T) {
	qemuIO := needTool(t, "qemu-io")
	f := getFixture(t)
	repoDir := copyRepo(t, f)
	before := treeHash(t, repoDir)
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	s := startServer(t, repoDir, "--cow")
	uri := s.uri("daily")
	orig, _ := os.ReadFile(f.img["old"])
	size := int64(len(orig))
	model := bytes.Clone(orig)
	writes := []struct {
		off, n int64
		pat    byte
	}{{100, 5000, 0xab}, {repo.ChunkSize - 300, 600, 0xcd}, {size - 512, 512, 0xef}}
	args := []string{"-f", "raw", uri}
	for _, w := range writes {
		args = append(args, "-c", fmt.Sprintf("write -P %#x %d %d", w.pat, w.off, w.n))
		for i := w.off; i < w.off+w.n; i++ {
			model[i] = w.pat
		}
	}
	args = append(args, "-c", "flush", "-c", "read -v 0 8192",
		"-c", fmt.Sprintf("read -v %d 4096", repo.ChunkSize-2048), "-c", fmt.Sprintf("read -v %d 4096", size-4096))
	got := nbdtest.QemuIODump(mustRun(t, qemuIO, args...))
	nbdtest.CheckDump(t, "after writes", got, 0, 8192, model)
	nbdtest.CheckDump(t, "after writes, across chunks", got, repo.ChunkSize-2048, 4096, model)
	nbdtest.CheckDump(t, "after writes, tail", got, size-4096, 4096, model)

	got = nbdtest.QemuIODump(mustRun(t, qemuIO, "-r", "-f", "raw", uri, "-c", "read -v 0 8192", "-c", fmt.Sprintf("read -v %d 4096", size-4096)))
	nbdtest.CheckDump(t, "next connection", got, 0, 8192, orig)
	nbdtest.CheckDump(t, "next connection, tail", got, size-4096, 4096, orig)

	if err := s.stop(); err != nil {
		t.Fatal(err)
	}
	if after := treeHash(t, repoDir); after != before {
		t.Errorf("the repository changed:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if ents, _ := os.ReadDir(tmp); len(ents) != 0 {
		t.Errorf("overlay files left in TMPDIR: %v", ents)
	}
}

// TestFileRestore is the file-restore recipe without a kernel NBD module:
// nbdfuse presents a revision as a file, debugfs pulls a file out of the
// ext4 file system in it.
func TestFileRestore(t *testing.T) {
	debugfs := needTool(t, "debugfs")
	nbdfuse := needTool(t, "nbdfuse")
	fusermount := needTool(t, "fusermount3")
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skipf("nbdfuse needs /dev/fuse: %v", err)
	}
	f := getFixture(t)
	s := startServer(t, f.repo)
	dir := t.TempDir()
	// Registered after startServer's cleanup, so it unmounts first.
	dev := nbdtest.MountFUSE(t, nbdfuse, fusermount, filepath.Join(dir, "mnt"), s.uri("daily"), fileSize(t, f.img["old"]))
	if fi, _ := os.Stat(dev); fi.Mode().Perm()&0o222 != 0 {
		t.Errorf("nbdfuse presents the read-only export as writable: %v", fi.Mode())
	}
	for _, name := range []string{"etc/app/data.bin", "srv/big.bin", "home/a.txt"} {
		out := filepath.Join(dir, filepath.Base(name))
		mustRun(t, debugfs, "-R", "dump /"+name+" "+out, dev)
		want := f.files[name]
		if name == "home/a.txt" {
			want = f.files["old:home/a.txt"] // as it was at the daily backup
		}
		if got, _ := os.ReadFile(out); !bytes.Equal(got, want) {
			t.Errorf("/%s restored from the daily revision: %d bytes, differs from the original (%d bytes)", name, len(got), len(want))
		}
	}
}

// TestSIGTERM: the server stops at once with exit 0 and says so.
func TestSIGTERM(t *testing.T) {
	nbdinfo := needTool(t, "nbdinfo")
	f := getFixture(t)
	s := startServer(t, f.repo)
	mustRun(t, nbdinfo, "--size", s.uri(""))
	start := time.Now()
	if err := s.stop(); err != nil {
		t.Fatalf("backy-nbd after SIGTERM: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("backy-nbd took %v to stop", d)
	}
	if !strings.Contains(s.logText(), "msg=stopped") {
		t.Errorf("no stop message in the log:\n%s", s.logText())
	}
}

// TestMap: clients learn where the zero chunks are without reading them
// (NBD_CMD_BLOCK_STATUS, base:allocation).
func TestMap(t *testing.T) {
	nbdinfo := needTool(t, "nbdinfo")
	f := getFixture(t)
	s := startServer(t, f.repo)
	r, err := repo.Open(f.repo)
	if err != nil {
		t.Fatal(err)
	}
	ix, err := r.Index(f.id["new"])
	if err != nil {
		t.Fatal(err)
	}
	var extents []struct {
		Offset, Length int64
		Type           int
	}
	out := mustRun(t, nbdinfo, "--map", "--json", s.uri("latest"))
	if err := json.Unmarshal([]byte(out), &extents); err != nil {
		t.Fatalf("nbdinfo --map --json: %v\n%s", err, out)
	}
	next, zeros := int64(0), 0
	for _, e := range extents {
		if e.Offset != next || e.Length <= 0 || e.Offset%repo.ChunkSize != 0 || e.Length%repo.ChunkSize != 0 {
			t.Fatalf("extent %+v after %d", e, next)
		}
		for off := e.Offset; off < e.Offset+e.Length; off += repo.ChunkSize {
			zero := ix.Hashes[off/repo.ChunkSize].IsZero()
			if zero != (e.Type == 3) || (!zero && e.Type != 0) {
				t.Errorf("chunk at %d: zero %v, mapped as type %d", off, zero, e.Type)
			}
			if zero {
				zeros++
			}
		}
		next = e.Offset + e.Length
	}
	if next != ix.Size || zeros == 0 {
		t.Errorf("map covers %d of %d bytes, %d zero chunks", next, ix.Size, zeros)
	}
}

// TestCOWOverlapping: qemu-io sends writes and reads at once (aio), over
// ranges that do not overlap but share 4 KiB blocks of the overlay, so a
// write copies a block other requests read or write meanwhile. Every read
// sees the revision's bytes, and afterwards the export reads as the writes
// made it.
func TestCOWOverlapping(t *testing.T) {
	qemuIO := needTool(t, "qemu-io")
	f := getFixture(t)
	s := startServer(t, f.repo, "--cow")
	orig, _ := os.ReadFile(f.img["old"])
	model := bytes.Clone(orig)
	args := []string{"-f", "raw", s.uri("daily")}
	type span struct{ off, n int64 }
	var reads []span
	off := int64(100)
	for i := range 24 {
		n := int64(300 + i*397%2500)
		if i%3 == 2 {
			args = append(args, "-c", fmt.Sprintf("aio_read -v %d %d", off, n))
			reads = append(reads, span{off, n})
		} else {
			pat := byte(0x10 + i)
			args = append(args, "-c", fmt.Sprintf("aio_write -P %#x %d %d", pat, off, n))
			for j := off; j < off+n; j++ {
				model[j] = pat
			}
		}
		off += n
	}
	args = append(args, "-c", "aio_flush")
	got := nbdtest.QemuIODump(mustRun(t, qemuIO, args...))
	for _, r := range reads {
		nbdtest.CheckDump(t, fmt.Sprintf("aio_read %d+%d", r.off, r.n), got, r.off, r.n, orig)
	}
	got = nbdtest.QemuIODump(mustRun(t, qemuIO, append(args, "-c", fmt.Sprintf("read -v 0 %d", off+4096))...))
	nbdtest.CheckDump(t, "after the writes", got, 0, off+4096, model)
}

// TestMultiConnOnlyByID: each connection resolves its export name on its
// own, so a name that moves (latest, N, a tag, the empty name, an id
// prefix) must not claim multi-conn: a backup stored between two
// connections of one nbdcopy would give them different revisions. nbdinfo
// shows the revision id the server resolved (NBD_INFO_NAME), and only a
// client that names the revision by id gets multi-conn.
func TestMultiConnOnlyByID(t *testing.T) {
	nbdinfo := needTool(t, "nbdinfo")
	f := getFixture(t)
	repoDir := copyRepo(t, f)
	s := startServer(t, repoDir)
	check := func(name, wantID string, wantMulti bool) {
		t.Helper()
		var info struct {
			Exports []struct {
				Name  string `json:"export-name"`
				Multi bool   `json:"can_multi_conn"`
			} `json:"exports"`
		}
		out := mustRun(t, nbdinfo, "--json", s.uri(name))
		if err := json.Unmarshal([]byte(out), &info); err != nil || len(info.Exports) != 1 {
			t.Fatalf("nbdinfo --json %q: %v\n%s", name, err, out)
		}
		if e := info.Exports[0]; e.Name != wantID || e.Multi != wantMulti {
			t.Errorf("nbdinfo %q: export %q can_multi_conn %v, want %q %v", name, e.Name, e.Multi, wantID, wantMulti)
		}
	}
	for _, name := range []string{"latest", "", "0", f.id["new"][:5]} {
		check(name, f.id["new"], false)
	}
	check("daily", f.id["old"], false)
	check(f.id["new"], f.id["new"], true)
	check(f.id["old"], f.id["old"], true)

	// A backup between two connections: latest is another revision now,
	// and neither connection was told it could be mixed with the other.
	id, err := pipeline(f.img["old"], repoDir)
	if err != nil {
		t.Fatal(err)
	}
	check("latest", id, false)
	check(f.id["new"], f.id["new"], true)

	// nbdcopy falls back to one connection for latest, and copies it right.
	out := filepath.Join(t.TempDir(), "latest.img")
	mustRun(t, needTool(t, "nbdcopy"), "--connections=4", s.uri("latest"), out)
	sameFiles(t, out, f.img["old"])
}
