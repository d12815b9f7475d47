package faults

import (
	"bytes"
	crand "crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/backy/backy/internal/clitest"
	"github.com/backy/backy/internal/raceflag"
	"github.com/backy/backy/pkg/extent"
	"github.com/backy/backy/pkg/repo"
)

// Exit codes of the one table (docs/HACKING.md).
const (
	exitOK       = 0
	exitFailure  = 1
	exitBadInput = 3
	exitDamaged  = 4
	exitBusy     = 5
	exitNotFound = 6
	exitNoSpace  = 7
	killed       = -int(syscall.SIGKILL)
)

var (
	// binDir holds the binaries under test, built by TestMain.
	binDir string
	// long is the local mode: many more kills, mutations and seconds.
	long = os.Getenv("BACKY_FAULTS_LONG") == "1"
	// upkeep lists the upkeep subcommands backy-store has (verify, purge,
	// forget, distrust, ...): the suite uses each one once it exists.
	upkeep = map[string]bool{}
)

// innerEnv marks a re-executed test binary (TestDiskFull runs its body in
// a private mount namespace).
const innerEnv = "BACKY_FAULTS_INNER"

func TestMain(m *testing.M) {
	flag.Parse()
	if os.Getenv(innerEnv) != "" {
		binDir = os.Getenv("BACKY_FAULTS_BIN")
		probeUpkeep()
		os.Exit(m.Run())
	}
	if dir := os.Getenv("BACKY_FAULTS_BIN"); dir != "" {
		binDir = dir // test binaries built elsewhere (or installed ones)
		probeUpkeep()
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "backy-faults-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "faults:", err)
		os.Exit(1)
	}
	if err := build(dir); err != nil {
		fmt.Fprintln(os.Stderr, "faults: building the binaries:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	binDir = dir
	probeUpkeep()
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// build compiles the commands under test into dir. BACKY_FAULTS_RACE=1
// builds them with the race detector (much slower, for local runs).
func build(dir string) error {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return fmt.Errorf("the go command is needed to build the binaries: %w", err)
	}
	out, err := exec.Command(goBin, "env", "GOMOD").Output()
	if err != nil {
		return err
	}
	root := filepath.Dir(strings.TrimSpace(string(out)))
	args := []string{"build", "-o", dir + "/"}
	if os.Getenv("BACKY_FAULTS_RACE") == "1" {
		args = append(args, "-race")
	}
	args = append(args, "./cmd/backy-extract", "./cmd/backy-store", "./cmd/backy-restore")
	cmd := exec.Command(goBin, args...)
	cmd.Dir = root
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	return cmd.Run()
}

func probeUpkeep() {
	out, _ := exec.Command(filepath.Join(binDir, "backy-store"), "--help").CombinedOutput()
	for _, sub := range []string{"verify", "purge", "forget", "distrust", "trust", "expire", "tags"} {
		if regexp.MustCompile(`(?m)^\s+` + sub + `\b`).Match(out) {
			upkeep[sub] = true
		}
	}
}

// kills is how many SIGKILLs each crash test needs: BACKY_FAULTS_KILLS,
// or the default or long figure.
func kills(def, lng int) int {
	if n, err := strconv.Atoi(os.Getenv("BACKY_FAULTS_KILLS")); err == nil && n > 0 {
		return n
	}
	return scale(def, lng)
}

// scale picks the default or the long figure.
func scale(def, lng int) int {
	if long {
		return lng
	}
	return def
}

// ---- running the binaries ----

type result struct {
	code           int
	stdout, stderr string
}

func (r result) String() string {
	return fmt.Sprintf("exit %d, stderr %q", r.code, strings.TrimSpace(r.stderr))
}

func command(name string, args ...string) *exec.Cmd {
	return exec.Command(filepath.Join(binDir, name), args...)
}

// backy runs one command to its end.
func backy(t testing.TB, stdin io.Reader, name string, args ...string) result {
	t.Helper()
	cmd := command(name, args...)
	cmd.Stdin = stdin
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return result{clitest.ExitCode(t, err), out.String(), errb.String()}
}

// storeStream stores an in-memory stream.
func storeStream(t testing.TB, dir string, stream []byte, tags ...string) result {
	t.Helper()
	args := []string{"-b", dir}
	if len(tags) > 0 {
		args = append(args, "--tags", strings.Join(tags, ","))
	}
	return backy(t, bytes.NewReader(stream), "backy-store", args...)
}

// pipeline is `backy-extract file IMG | backy-store -b DIR --tags TAG`,
// started; the store half can be killed.
type pipeline struct {
	extract, store    *exec.Cmd
	extErr, out, errb bytes.Buffer
	started           time.Time
}

func startBackup(t testing.TB, dir, img, snap string, tags ...string) *pipeline {
	t.Helper()
	p := &pipeline{}
	eargs := []string{"file"}
	if snap != "" {
		eargs = append(eargs, "--snapshot", snap)
	}
	p.extract = command("backy-extract", append(eargs, img)...)
	sargs := []string{"-b", dir}
	if len(tags) > 0 {
		sargs = append(sargs, "--tags", strings.Join(tags, ","))
	}
	p.store = command("backy-store", sargs...)
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	p.extract.Stdout, p.extract.Stderr = pw, &p.extErr
	p.store.Stdin, p.store.Stdout, p.store.Stderr = pr, &p.out, &p.errb
	p.started = time.Now()
	if err := p.extract.Start(); err != nil {
		t.Fatal(err)
	}
	if err := p.store.Start(); err != nil {
		t.Fatal(err)
	}
	pr.Close()
	pw.Close()
	return p
}

// wait returns the exit codes of store and extract.
func (p *pipeline) wait(t testing.TB) (storeCode, extractCode int) {
	t.Helper()
	return clitest.ExitCode(t, p.store.Wait()), clitest.ExitCode(t, p.extract.Wait())
}

// backup runs the pipeline to its end and returns the store's result.
func backup(t testing.TB, dir, img, snap string, tags ...string) result {
	t.Helper()
	p := startBackup(t, dir, img, snap, tags...)
	sc, ec := p.wait(t)
	if sc == 0 && ec != 0 {
		t.Fatalf("backy-extract failed (exit %d: %s) but backy-store succeeded", ec, p.extErr.String())
	}
	return result{sc, p.out.String(), p.errb.String()}
}

// mustBackup runs the pipeline and returns the new revision id.
func mustBackup(t testing.TB, dir, img, snap string, tags ...string) string {
	t.Helper()
	r := backup(t, dir, img, snap, tags...)
	if r.code != 0 {
		t.Fatalf("backup of %s: %v", img, r)
	}
	return strings.TrimSpace(r.stdout)
}

// restoreSum restores spec to stdout and returns the SHA-256 of the bytes.
func restoreSum(t testing.TB, dir, spec string) (string, result) {
	t.Helper()
	cmd := command("backy-restore", "-b", dir, "-r", spec, "-")
	h := sha256.New()
	var errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = h, &errb
	err := cmd.Run()
	return hex.EncodeToString(h.Sum(nil)), result{code: clitest.ExitCode(t, err), stderr: errb.String()}
}

// restoreFile restores spec into a file and returns its SHA-256 (empty when
// no file was left behind).
func restoreFile(t testing.TB, dir, spec, target string) (string, result) {
	t.Helper()
	r := backy(t, nil, "backy-restore", "-b", dir, "-r", spec, target)
	if _, err := os.Stat(target); err != nil {
		return "", r
	}
	return fileSum(t, target), r
}

// ---- revisions ----

type revInfo struct {
	ID       string   `json:"id"`
	Parent   string   `json:"parent"`
	Kind     string   `json:"kind"`
	Tags     []string `json:"tags"`
	Trust    string   `json:"trust"`
	Snapshot string   `json:"snapshot"`
	Size     int64    `json:"size"`
}

func statusOf(t testing.TB, dir string) ([]revInfo, result) {
	t.Helper()
	r := backy(t, nil, "backy-store", "-b", dir, "status", "--json")
	if r.code != 0 {
		return nil, r
	}
	var revs []revInfo
	if err := json.Unmarshal([]byte(r.stdout), &revs); err != nil {
		t.Fatalf("status --json printed something that is not JSON: %v\n%s", err, r.stdout)
	}
	return revs, r
}

func mustStatus(t testing.TB, dir string) []revInfo {
	t.Helper()
	revs, r := statusOf(t, dir)
	if r.code != 0 {
		t.Fatalf("status: %v", r)
	}
	return revs
}

// ---- images ----

const chunk = repo.ChunkSize

// image is a disk image file that changes from version to version, kept
// sparse like a real one: holes, compressible text, repeated blocks and
// random data, at sizes that are not always a multiple of the chunk size.
type image struct {
	path string
	size int64
	rng  *rand.Rand
	src  *rand.ChaCha8
}

func newImage(t testing.TB, path string, size int64, seed uint64) *image {
	t.Helper()
	var s [32]byte
	copy(s[:], fmt.Sprintf("backy-faults-%d", seed))
	im := &image{path: path, size: size, rng: rand.New(rand.NewPCG(seed, 7)), src: rand.NewChaCha8(s)}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	dup := im.random(chunk)
	for off := int64(0); off < size; off += chunk {
		n := min(chunk, size-off)
		var b []byte
		switch k := im.rng.IntN(100); {
		case k < 30:
			continue // a hole
		case k < 45:
			b = im.text(n, off)
		case k < 55:
			b = dup[:n]
		case k < 65:
			b = im.random(n)
			clear(b[n/4 : n/2]) // zeros inside data
		default:
			b = im.random(n)
		}
		if _, err := f.WriteAt(b, off); err != nil {
			t.Fatal(err)
		}
	}
	return im
}

func (im *image) random(n int64) []byte {
	b := make([]byte, n)
	if raceflag.Enabled {
		crand.Read(b) // not instrumented: much faster under the race detector
	} else {
		im.src.Read(b)
	}
	return b
}

func (im *image) text(n, off int64) []byte {
	line := fmt.Sprintf("block at %d: the quick brown fox jumps over the lazy dog %d\n", off, im.rng.IntN(1000))
	return bytes.Repeat([]byte(line), int(n)/len(line)+1)[:n]
}

// mutate writes a few random ranges (data, text or zeros) and, when
// resize is set, sometimes grows or shrinks the image.
func (im *image) mutate(t testing.TB, writes int, resize bool) {
	t.Helper()
	f, err := os.OpenFile(im.path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if resize && im.rng.IntN(100) < 10 {
		size := im.size + im.rng.Int64N(16<<20) - 8<<20 + im.rng.Int64N(3)*4093
		im.size = max(size, 1<<20)
		if err := f.Truncate(im.size); err != nil {
			t.Fatal(err)
		}
	}
	for range writes {
		off := im.rng.Int64N(im.size)
		if im.rng.IntN(3) == 0 {
			off -= off % 4096 // aligned, like a file system writes
		}
		n := 1 + im.rng.Int64N(min(6<<20, im.size-off))
		var b []byte
		switch k := im.rng.IntN(100); {
		case k < 15:
			b = make([]byte, n)
		case k < 30:
			b = im.text(n, off)
		default:
			b = im.random(n)
		}
		if _, err := f.WriteAt(b, off); err != nil {
			t.Fatal(err)
		}
	}
}

func fileSum(t testing.TB, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func copyFile(t testing.TB, from, to string) {
	t.Helper()
	if out, err := exec.Command("cp", "--sparse=always", from, to).CombinedOutput(); err != nil {
		t.Fatalf("cp %s %s: %v %s", from, to, err, out)
	}
}

// diffStream encodes a differential extent stream taking the image at
// oldPath (snapshot base) to the one at newPath (snapshot snap), computed
// independently of backy-extract by comparing 64 KiB blocks.
func diffStream(t testing.TB, oldPath, newPath, base, snap string) []byte {
	t.Helper()
	oldB, err := os.ReadFile(oldPath)
	if err != nil {
		t.Fatal(err)
	}
	newB, err := os.ReadFile(newPath)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	w, err := extent.NewWriter(&buf, extent.Header{Kind: extent.Differential,
		Size: int64(len(newB)), Source: "file:" + newPath, Snapshot: snap, Base: base})
	if err != nil {
		t.Fatal(err)
	}
	const blk = 64 << 10
	type run struct {
		zero     bool
		from, to int
	}
	var cur *run
	flush := func() {
		if cur == nil {
			return
		}
		if cur.zero {
			err = w.WriteZero(int64(cur.from), int64(cur.to-cur.from))
		} else {
			err = w.WriteData(int64(cur.from), newB[cur.from:cur.to])
		}
		if err != nil {
			t.Fatal(err)
		}
		cur = nil
	}
	for off := 0; off < len(newB); off += blk {
		end := min(off+blk, len(newB))
		nb := newB[off:end]
		var ob []byte
		if off < len(oldB) {
			ob = oldB[off:min(end, len(oldB))]
		}
		if len(ob) < len(nb) { // beyond the old end the image reads as zero
			ob = append(append([]byte{}, ob...), make([]byte, len(nb)-len(ob))...)
		}
		if bytes.Equal(nb, ob) {
			flush()
			continue
		}
		zero := extent.IsZero(nb)
		if cur != nil && (cur.zero != zero || cur.to != off) {
			flush()
		}
		if cur == nil {
			cur = &run{zero: zero, from: off}
		}
		cur.to = end
	}
	flush()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// ---- repository checks ----

// snapshotRepo describes every file of a repository (but its lock files)
// by size and content hash, to show that a failed command changed nothing.
func snapshotRepo(t testing.TB, dir string) map[string]string {
	t.Helper()
	m := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "locks" && d.IsDir() {
			return filepath.SkipDir
		}
		if d.IsDir() {
			m[rel] = "dir"
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		s := sha256.Sum256(b)
		m[rel] = fmt.Sprintf("%d:%x", len(b), s[:8])
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	return m
}

func diffSnapshots(a, b map[string]string) []string {
	var d []string
	for k, v := range a {
		if w, ok := b[k]; !ok {
			d = append(d, "removed "+k)
		} else if v != w {
			d = append(d, "changed "+k)
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			d = append(d, "added "+k)
		}
	}
	sort.Strings(d)
	return d
}

// checkChunkFiles reads every chunk file not in seen and checks that it
// decompresses to content with the hash it is named by: a chunk file under
// chunks/ must always hold its full content, whatever was killed when.
func checkChunkFiles(t testing.TB, dir string, seen map[string]bool) int {
	t.Helper()
	buf := make([]byte, chunk)
	n := 0
	subs, _ := os.ReadDir(filepath.Join(dir, "chunks"))
	for _, sub := range subs {
		names, err := os.ReadDir(filepath.Join(dir, "chunks", sub.Name()))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range names {
			if seen[e.Name()] {
				continue
			}
			h, err := repo.ParseHash(e.Name())
			if err != nil || e.Name()[:2] != sub.Name() {
				t.Errorf("stray file in chunks/: %s/%s", sub.Name(), e.Name())
				continue
			}
			b, err := os.ReadFile(filepath.Join(dir, "chunks", sub.Name(), e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := repo.Decompress(buf, h, b); err != nil {
				t.Errorf("chunk file %s is damaged: %v", e.Name(), err)
				continue
			}
			seen[e.Name()] = true
			n++
		}
	}
	return n
}

// revisionFiles checks that every revision (a .rev file) has its index,
// and returns the indexes that have no metadata (left by a crash between
// the two renames: not a revision, only garbage for purge).
func revisionFiles(t testing.TB, dir string) (orphanIdx []string) {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(dir, "revisions"))
	if err != nil {
		t.Fatal(err)
	}
	has := map[string]bool{}
	for _, e := range entries {
		has[e.Name()] = true
	}
	for name := range has {
		if id, ok := strings.CutSuffix(name, ".rev"); ok && !has[id+".idx"] {
			t.Errorf("revision %s is half there: metadata without index", id)
		}
		if id, ok := strings.CutSuffix(name, ".idx"); ok && !has[id+".rev"] {
			orphanIdx = append(orphanIdx, id)
		}
		if !strings.HasSuffix(name, ".rev") && !strings.HasSuffix(name, ".idx") {
			t.Errorf("unexpected file revisions/%s", name)
		}
	}
	return orphanIdx
}

// tmpLeft lists what is left in the repository's tmp/ directory.
func tmpLeft(dir string) []string {
	es, _ := os.ReadDir(filepath.Join(dir, "tmp"))
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

// copyTree copies a repository for a test that damages it.
func copyTree(t testing.TB, from, to string) {
	t.Helper()
	if out, err := exec.Command("cp", "-a", from, to).CombinedOutput(); err != nil {
		t.Fatalf("cp -a: %v %s", err, out)
	}
}

func firstTag(r revInfo, prefix string) string {
	for _, tag := range r.Tags {
		if strings.HasPrefix(tag, prefix) {
			return tag
		}
	}
	return ""
}

// oneLine checks that a failing command explained itself in one line on
// stderr and printed nothing on stdout.
func oneLine(t testing.TB, what string, r result) {
	t.Helper()
	if strings.TrimSpace(r.stdout) != "" {
		t.Errorf("%s: stdout is not empty on failure: %q", what, r.stdout)
	}
	lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
	if len(lines) != 1 || lines[0] == "" {
		t.Errorf("%s: want one line on stderr, got %q", what, r.stderr)
	}
}
