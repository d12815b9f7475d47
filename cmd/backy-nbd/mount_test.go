package main

// backy-nbd mount with real parts: disks partitioned with sfdisk (MBR) and
// sgdisk (GPT), ext2/3/4 made with mke2fs -d, an XFS made with mkfs.xfs,
// an ext4 copied while loop-mounted (a dirty journal), all stored by the
// real pipeline, mounted through nbdfuse and fuse2fs, and copied out with
// cp -a. Every test unmounts with fusermount3 -uz and kills the helpers
// below its directory by pid in a cleanup that runs even when it fails,
// and checks that nothing stays mounted.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/backy/backy/internal/clitest"
	"github.com/backy/backy/pkg/repo"
)

// mountFixture is one repository with a revision per disk layout, tagged
// by name, and the trees and images each was made from.
type mountFixture struct {
	dir   string
	repo  string
	trees map[string]string // tree name -> source directory
	imgs  map[string]string // fs or disk name -> image file
	start map[string]int64  // "disk/pN" -> byte offset of the partition
}

var (
	mfixOnce sync.Once
	mfix     *mountFixture
	mfixErr  error
	mfixDir  string
)

// needMountTools returns the tools the mount tests use, failing or
// skipping as needTool does.
func needMountTools(t *testing.T) {
	t.Helper()
	for _, n := range []string{"fuse2fs", "fusermount3", "mke2fs", "mkfs.xfs", "sfdisk", "sgdisk", "debugfs"} {
		needTool(t, n)
	}
}

func getMountFixture(t *testing.T) *mountFixture {
	t.Helper()
	needMountTools(t)
	mfixOnce.Do(func() { mfix, mfixErr = buildMountFixture() })
	if mfixErr != nil {
		t.Fatal(mfixErr)
	}
	return mfix
}

func runTool(name string, args ...string) error {
	p, err := lookTool(name)
	if err != nil {
		return err
	}
	out, err := exec.Command(p, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
	return nil
}

// writeTree makes a directory tree of every kind of entry fuse2fs must
// show: files of many sizes (one across several 4 MiB chunks), an empty
// file, a private file, a hard link, a symlink, a name with a space.
func writeTree(dir string, seed uint64, big int) error {
	rnd := rand.New(rand.NewPCG(seed, 1))
	data := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rnd.Uint32())
		}
		return b
	}
	files := map[string][]byte{
		"etc/hostname":        []byte("guest\n"),
		"etc/app/config.toml": data(3000),
		"home/user/notes.txt": data(70000),
		"var/lib/db.dump":     data(big),
		"var/empty":           nil,
		"root/secret":         data(100),
		"srv/a name":          data(4096),
	}
	for p, b := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(full, b, 0o644); err != nil {
			return err
		}
	}
	if err := os.Chmod(filepath.Join(dir, "root/secret"), 0o600); err != nil {
		return err
	}
	if err := os.Chmod(filepath.Join(dir, "root"), 0o700); err != nil {
		return err
	}
	if err := os.Link(filepath.Join(dir, "etc/hostname"), filepath.Join(dir, "etc/hostname.link")); err != nil {
		return err
	}
	if err := os.Symlink("../etc/app/config.toml", filepath.Join(dir, "srv/config")); err != nil {
		return err
	}
	old := time.Date(2020, 5, 17, 8, 30, 0, 0, time.UTC)
	return os.Chtimes(filepath.Join(dir, "home/user/notes.txt"), old, old)
}

// mkfs makes an ext file system of size bytes from a tree.
func mkfs(img, typ, tree string, size int64) error {
	if err := makeSparse(img, size); err != nil {
		return err
	}
	args := []string{"-q", "-F", "-t", typ}
	if tree != "" {
		args = append(args, "-d", tree)
	}
	return runTool("mke2fs", append(args, img)...)
}

func makeSparse(path string, size int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Truncate(size)
}

// place copies the file system image src into disk at byte off.
func place(disk, src string, off int64) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(disk, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = f.WriteAt(b, off)
	return err
}

const mib = 1 << 20

func buildMountFixture() (*mountFixture, error) {
	var err error
	if mfixDir, err = os.MkdirTemp("", "backy-mount-test-"); err != nil {
		return nil, err
	}
	if err := os.Chmod(mfixDir, 0o755); err != nil {
		return nil, err
	}
	d := mfixDir
	f := &mountFixture{dir: d, repo: filepath.Join(d, "repo"), trees: map[string]string{}, imgs: map[string]string{}, start: map[string]int64{}}
	for i, name := range []string{"a", "b", "c"} {
		f.trees[name] = filepath.Join(d, "tree-"+name)
		if err := writeTree(f.trees[name], uint64(i+1), 9*mib+12345); err != nil {
			return nil, err
		}
	}
	fs := func(name, typ, tree string, size int64) error {
		f.imgs[name] = filepath.Join(d, name+".img")
		return mkfs(f.imgs[name], typ, tree, size)
	}
	for _, s := range []struct {
		name, typ, tree string
		size            int64
	}{{"ext4a", "ext4", "a", 24 * mib}, {"ext2b", "ext2", "b", 24 * mib}, {"ext3c", "ext3", "c", 24 * mib}, {"plain", "ext4", "a", 28 * mib}} {
		if err := fs(s.name, s.typ, f.trees[s.tree], s.size); err != nil {
			return nil, err
		}
	}
	f.imgs["xfs"] = filepath.Join(d, "xfs.img")
	if err := makeSparse(f.imgs["xfs"], 300*mib); err != nil {
		return nil, err
	}
	if err := runTool("mkfs.xfs", "-q", "-f", f.imgs["xfs"]); err != nil {
		return nil, err
	}

	// mbr: p1 ext4 (tree a), p2 ext2 (tree b), p3 empty (no file system)
	disk := func(name string, size int64) string {
		f.imgs[name] = filepath.Join(d, name+".img")
		if err := makeSparse(f.imgs[name], size); err != nil {
			mfixErr = err
		}
		return f.imgs[name]
	}
	mbr := disk("mbr", 80*mib)
	sf := exec.Command("/usr/sbin/sfdisk", "-q", mbr)
	sf.Stdin = strings.NewReader("start=2048,size=24MiB,type=83\nsize=24MiB,type=83\nsize=8MiB,type=83\n")
	if out, err := sf.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("sfdisk: %v: %s", err, out)
	}
	f.start["mbr/p1"], f.start["mbr/p2"], f.start["mbr/p3"] = 1*mib, 25*mib, 49*mib
	// gpt1: one ext3 partition; gpt3: EFI (empty), ext4 (tree a), XFS
	gpt1 := disk("gpt1", 32*mib)
	if err := runTool("sgdisk", "-n", "1:2048:+24M", "-t", "1:8300", "-c", "1:root", gpt1); err != nil {
		return nil, err
	}
	f.start["gpt1/p1"] = 1 * mib
	gpt3 := disk("gpt3", 340*mib)
	if err := runTool("sgdisk", "-n", "1:2048:+4M", "-t", "1:EF00", "-n", "2:0:+24M", "-t", "2:8300", "-n", "3:0:+300M", "-t", "3:8300", gpt3); err != nil {
		return nil, err
	}
	f.start["gpt3/p1"], f.start["gpt3/p2"], f.start["gpt3/p3"] = 1*mib, 5*mib, 29*mib
	if mfixErr != nil {
		return nil, mfixErr
	}
	for _, p := range []struct{ disk, fs, part string }{
		{"mbr", "ext4a", "mbr/p1"}, {"mbr", "ext2b", "mbr/p2"}, {"gpt1", "ext3c", "gpt1/p1"},
		{"gpt3", "ext4a", "gpt3/p2"}, {"gpt3", "xfs", "gpt3/p3"},
	} {
		if err := place(f.imgs[p.disk], f.imgs[p.fs], f.start[p.part]); err != nil {
			return nil, err
		}
	}
	for _, tag := range []string{"mbr", "gpt1", "gpt3", "plain"} {
		if _, err := pipeline(f.imgs[tag], f.repo, "--tags", tag); err != nil {
			return nil, err
		}
	}
	return f, nil
}

// mounted is a running backy-nbd mount.
type mounted struct {
	dir    string
	cmd    *exec.Cmd
	stderr *syncBuffer
	done   chan struct{}
	err    error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startMount runs backy-nbd -b REPO mount ARGS... MNT through wrap (for
// another user) and waits for its README, the sign that everything is
// mounted. The cleanup registered first ends everything below mnt,
// however the test ended.
func startMount(t *testing.T, repoDir, mnt string, wrap []string, args ...string) *mounted {
	t.Helper()
	if err := os.MkdirAll(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	cleanupMounts(t, mnt)
	m := &mounted{dir: mnt, stderr: &syncBuffer{}, done: make(chan struct{})}
	argv := append(append([]string(nil), wrap...), "backy-nbd", "-b", repoDir, "mount")
	argv = append(append(argv, args...), mnt)
	m.cmd = exec.Command(argv[0], argv[1:]...)
	m.cmd.Stderr = m.stderr
	if err := m.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { m.err = m.cmd.Wait(); close(m.done) }()
	t.Cleanup(func() { m.kill(); t.Logf("backy-nbd mount stderr:\n%s", m.stderr.String()) })
	deadline := time.Now().Add(30 * time.Second)
	for {
		// the README of this mount (one left by a killed one names another pid)
		if b, err := os.ReadFile(filepath.Join(mnt, "README.txt")); err == nil && strings.Contains(string(b), fmt.Sprintf(", pid %d\n", m.cmd.Process.Pid)) {
			return m
		}
		select {
		case <-m.done:
			t.Fatalf("backy-nbd mount exited: %v:\n%s", m.err, m.stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("backy-nbd mount did not mount within 30s:\n%s", m.stderr.String())
		}
	}
}

func (m *mounted) kill() {
	select {
	case <-m.done:
	default:
		m.cmd.Process.Kill()
		<-m.done
	}
}

// signal sends sig and waits (at most 30 s) for the mount command to exit.
func (m *mounted) signal(t *testing.T, sig syscall.Signal) error {
	t.Helper()
	if err := m.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	select {
	case <-m.done:
		return m.err
	case <-time.After(30 * time.Second):
		t.Fatalf("backy-nbd mount did not exit within 30s of %v:\n%s", sig, m.stderr.String())
		return nil
	}
}

// fuseMountsBelow lists the FUSE mounts below dir (from /proc/self/mountinfo).
func fuseMountsBelow(t *testing.T, dir string) []string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		pre, post, ok := strings.Cut(line, " - ")
		f := strings.Fields(pre)
		if !ok || len(f) < 5 || !strings.HasPrefix(post, "fuse") {
			continue
		}
		if strings.HasPrefix(f[4], dir+"/") {
			out = append(out, f[4])
		}
	}
	return out
}

// helpersBelow finds the fuse2fs processes whose command line
// names a path below dir.
func helpersBelow(dir string) []int {
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || len(b) == 0 {
			continue
		}
		args := strings.Split(string(b), "\x00")
		base := filepath.Base(args[0])
		if base == "fuse2fs" && strings.Contains(string(b), dir+"/") {
			pids = append(pids, pid)
		}
	}
	return pids
}

// cleanupMounts registers the cleanup that leaves nothing behind below
// dir: lazy unmounts of every FUSE mount (newest first), then SIGKILL of
// every helper by pid; it fails the test if a mount remains.
func cleanupMounts(t *testing.T, dir string) {
	t.Cleanup(func() {
		ms := fuseMountsBelow(t, dir)
		for i := len(ms) - 1; i >= 0; i-- {
			t.Logf("cleanup: fusermount3 -uz %s", ms[i])
			exec.Command("fusermount3", "-uz", ms[i]).Run()
		}
		for _, pid := range helpersBelow(dir) {
			t.Logf("cleanup: kill %d", pid)
			syscall.Kill(pid, syscall.SIGKILL)
		}
		if ms := fuseMountsBelow(t, dir); len(ms) > 0 {
			t.Errorf("still mounted after the cleanup: %v", ms)
		}
	})
}

// assertClean checks that the mount point is back to an empty directory,
// with nothing mounted below it and no helper left.
func assertClean(t *testing.T, dir string) {
	t.Helper()
	if ms := fuseMountsBelow(t, dir); len(ms) > 0 {
		t.Errorf("still mounted: %v", ms)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		pids := helpersBelow(dir)
		if len(pids) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("helpers still running: %v", pids)
			break
		}
	}
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, de := range des {
		names = append(names, de.Name())
	}
	if len(names) > 0 {
		t.Errorf("%s not empty: %v", dir, names)
	}
}

// cpOut copies dir out of the mount with cp -a (as the given user: a
// FUSE mount is the mounting user's) and compares it with the source.
func cpOut(t *testing.T, wrap []string, from, want string) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "out")
	if len(wrap) > 0 {
		os.Chmod(filepath.Dir(out), 0o777)
	}
	argv := append(append([]string(nil), wrap...), "cp", "-a", from, out)
	if b, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("cp -a %s: %v: %s", from, err, b)
	}
	sameTree(t, want, out)
}

// sameTree compares two trees entry by entry: type, permissions, size,
// bytes, symlink targets and modification times (lost+found, which
// mke2fs adds, is left out).
func sameTree(t *testing.T, want, got string) {
	t.Helper()
	seen := map[string]bool{}
	err := filepath.WalkDir(want, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(want, p)
		seen[rel] = true
		wi, _ := os.Lstat(p)
		gi, err := os.Lstat(filepath.Join(got, rel))
		if err != nil {
			t.Errorf("%s: %v", rel, err)
			return nil
		}
		if wi.Mode() != gi.Mode() {
			t.Errorf("%s: mode %v, want %v", rel, gi.Mode(), wi.Mode())
		}
		switch {
		case wi.Mode()&fs.ModeSymlink != 0:
			a, _ := os.Readlink(p)
			b, _ := os.Readlink(filepath.Join(got, rel))
			if a != b {
				t.Errorf("%s: link to %q, want %q", rel, b, a)
			}
		case wi.Mode().IsRegular():
			a, _ := os.ReadFile(p)
			b, err := os.ReadFile(filepath.Join(got, rel))
			if err != nil || !bytes.Equal(a, b) {
				t.Errorf("%s: content differs (%d bytes, want %d): %v", rel, len(b), len(a), err)
			}
			// small ext file systems (128-byte inodes) keep whole seconds
			if !wi.ModTime().Truncate(time.Second).Equal(gi.ModTime().Truncate(time.Second)) {
				t.Errorf("%s: mtime %v, want %v", rel, gi.ModTime(), wi.ModTime())
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	filepath.WalkDir(got, func(p string, d fs.DirEntry, err error) error {
		rel, _ := filepath.Rel(got, p)
		if rel == "lost+found" {
			return filepath.SkipDir
		}
		if err == nil && !seen[rel] {
			t.Errorf("%s: not in the source", rel)
		}
		return nil
	})
	a, _ := os.Stat(filepath.Join(got, "etc/hostname"))
	b, _ := os.Stat(filepath.Join(got, "etc/hostname.link"))
	if a != nil && b != nil && !os.SameFile(a, b) {
		t.Error("the hard link etc/hostname.link was not kept")
	}
}

// sameImage compares a partition's image file in the mount with bytes
// [off, off+size) of the disk image, streaming.
func sameImage(t *testing.T, img, disk string, off, size int64) {
	t.Helper()
	a, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := os.Open(disk)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if fi, _ := a.Stat(); fi.Size() != size {
		t.Fatalf("%s: %d bytes, want %d", img, fi.Size(), size)
	}
	x, y := make([]byte, 4*mib), make([]byte, 4*mib)
	for pos := int64(0); pos < size; pos += int64(len(x)) {
		n := min(int64(len(x)), size-pos)
		if _, err := io.ReadFull(a, x[:n]); err != nil {
			t.Fatalf("%s at %d: %v", img, pos, err)
		}
		if _, err := b.ReadAt(y[:n], off+pos); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(x[:n], y[:n]) {
			t.Fatalf("%s differs from %s in the 4 MiB at %d", img, disk, pos)
		}
	}
}

func entries(t *testing.T, dir string) string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, de := range des {
		n := de.Name()
		if de.IsDir() {
			n += "/"
		}
		names = append(names, n)
	}
	return strings.Join(names, " ")
}

// TestMountLayouts mounts an MBR disk (ext4, ext2, no file system), a GPT
// disk with one ext3, a GPT disk with EFI, ext4 and XFS, and a disk
// without a table; copies every tree out with cp -a and compares it with
// its source, compares each image file with the partition's bytes, and
// ends each mount with SIGINT (exit 0, nothing left).
func TestMountLayouts(t *testing.T) {
	f := getMountFixture(t)
	cases := []struct {
		tag     string
		entries string
		trees   map[string]string // entry -> source tree
		parts   []string          // entries whose image is compared
		stderr  []string
	}{
		{"mbr", ".backy-nbd.lock .images/ README.txt p1/ p1.img p2/ p2.img p3.img",
			map[string]string{"p1": "a", "p2": "b"}, []string{"p1", "p2", "p3"},
			[]string{`p1: partition 1, 0x83 Linux, 24.0 MiB at byte 1048576, ext4: files in \S+/p1/, image \S+/p1.img`,
				`p2: partition 2, 0x83 Linux, 24.0 MiB at byte 26214400, ext2: files in`,
				`p3: partition 3, 0x83 Linux, 8.0 MiB at byte 51380224, no file system recognised; image only: \S+/p3.img`}},
		{"gpt1", ".backy-nbd.lock .images/ README.txt p1/ p1.img",
			map[string]string{"p1": "c"}, []string{"p1"},
			[]string{`p1: partition 1, Linux filesystem, 24.0 MiB at byte 1048576, name "root", ext3: files in`}},
		{"gpt3", ".backy-nbd.lock .images/ README.txt p1.img p2/ p2.img p3.img",
			map[string]string{"p2": "a"}, []string{"p1", "p2", "p3"},
			[]string{`p1: partition 1, EFI System, 4.0 MiB at byte 1048576, no file system recognised; image only`,
				`p3: partition 3, Linux filesystem, 300.0 MiB at byte 30408704, xfs: no FUSE driver for XFS here; as root: mount -o ro,norecovery,loop p3.img DIR; image only: \S+/p3.img`}},
		{"plain", ".backy-nbd.lock .images/ README.txt disk/ disk.img",
			map[string]string{"disk": "a"}, []string{"disk"},
			[]string{`disk: whole disk \(no partition table\), ext4: files in`}},
	}
	for _, c := range cases {
		t.Run(c.tag, func(t *testing.T) {
			mnt := filepath.Join(t.TempDir(), "mnt")
			m := startMount(t, f.repo, mnt, nil, "-r", c.tag)
			if got := entries(t, mnt); got != c.entries {
				t.Errorf("mount point holds %q, want %q", got, c.entries)
			}
			for _, re := range c.stderr {
				if !regexp.MustCompile("(?m)^backy-nbd: " + re).MatchString(m.stderr.String()) {
					t.Errorf("stderr lacks %q:\n%s", re, m.stderr.String())
				}
			}
			readme, err := os.ReadFile(filepath.Join(mnt, "README.txt"))
			if err != nil || !strings.Contains(string(readme), "backy-nbd umount "+mnt) {
				t.Errorf("README.txt: %v\n%s", err, readme)
			}
			for entry, tree := range c.trees {
				cpOut(t, nil, filepath.Join(mnt, entry), f.trees[tree])
			}
			for _, p := range c.parts {
				if c.tag == "plain" {
					sameImage(t, filepath.Join(mnt, "disk.img"), f.imgs["plain"], 0, fileSize(t, f.imgs["plain"]))
					continue
				}
				fi, err := os.Stat(filepath.Join(mnt, p+".img"))
				if err != nil {
					t.Fatal(err)
				}
				sameImage(t, filepath.Join(mnt, p+".img"), f.imgs[c.tag], f.start[c.tag+"/"+p], fi.Size())
			}
			// read-only all the way down
			if err := os.WriteFile(filepath.Join(mnt, c.parts[0]+".img"), []byte("x"), 0o644); err == nil {
				t.Error("wrote into an image file")
			}
			for entry := range c.trees {
				if err := os.WriteFile(filepath.Join(mnt, entry, "new"), []byte("x"), 0o644); err == nil {
					t.Error("created a file in a mounted tree")
				}
			}
			if err := m.signal(t, syscall.SIGINT); err != nil {
				t.Errorf("after SIGINT: %v, want exit 0:\n%s", err, m.stderr.String())
			}
			assertClean(t, mnt)
		})
	}
}

// TestMountDirtyJournal: an ext4 copied while loop-mounted and written to
// (its journal needs recovery) is browsable; the journal is not replayed.
func TestMountDirtyJournal(t *testing.T) {
	needMountTools(t)
	if os.Geteuid() != 0 {
		t.Skip("loop mounts need root")
	}
	d := t.TempDir()
	tree := filepath.Join(d, "tree")
	if err := writeTree(tree, 7, 5*mib); err != nil {
		t.Fatal(err)
	}
	src, copyImg := filepath.Join(d, "live.img"), filepath.Join(d, "dirty.img")
	if err := mkfs(src, "ext4", tree, 32*mib); err != nil {
		t.Fatal(err)
	}
	loop := filepath.Join(d, "loop")
	os.Mkdir(loop, 0o755)
	if out, err := exec.Command("mount", "-o", "loop", src, loop).CombinedOutput(); err != nil {
		t.Fatalf("mount -o loop: %v: %s", err, out)
	}
	mountedLoop := true
	unmount := func() {
		if mountedLoop {
			if out, err := exec.Command("umount", loop).CombinedOutput(); err != nil {
				t.Errorf("umount %s: %v: %s", loop, err, out)
			}
			mountedLoop = false
		}
	}
	t.Cleanup(unmount)
	// write while mounted, make it reach the disk (and the journal), copy
	// the image while still mounted, and write on
	if err := os.WriteFile(filepath.Join(loop, "written-while-mounted"), bytes.Repeat([]byte("j"), 100000), 0o644); err != nil {
		t.Fatal(err)
	}
	syscall.Sync()
	if out, err := exec.Command("cp", "--sparse=always", src, copyImg).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v: %s", err, out)
	}
	os.WriteFile(filepath.Join(loop, "after-copy"), []byte("later"), 0o644)
	unmount()
	dump, err := exec.Command("/usr/sbin/dumpe2fs", "-h", copyImg).CombinedOutput()
	if err != nil || !regexp.MustCompile(`(?m)^Filesystem features:.*needs_recovery`).Match(dump) {
		t.Fatalf("the copy's journal is not dirty (dumpe2fs -h: %v):\n%s", err, dump)
	}
	repoDir := filepath.Join(d, "repo")
	if _, err := pipeline(copyImg, repoDir); err != nil {
		t.Fatal(err)
	}
	mnt := filepath.Join(d, "mnt")
	m := startMount(t, repoDir, mnt, nil)
	if !regexp.MustCompile(`(?m)^backy-nbd: disk: whole disk \(no partition table\), ext4: files in`).MatchString(m.stderr.String()) {
		t.Errorf("stderr:\n%s", m.stderr.String())
	}
	cpOut(t, nil, filepath.Join(mnt, "disk", "etc"), filepath.Join(tree, "etc"))
	cpOut(t, nil, filepath.Join(mnt, "disk", "var"), filepath.Join(tree, "var"))
	// the repository keeps the dirty copy: the journal was not replayed into it
	if _, err := os.Stat(filepath.Join(mnt, "disk", "after-copy")); err == nil {
		t.Error("a file written after the copy shows")
	}
	if err := m.signal(t, syscall.SIGTERM); err != nil {
		t.Errorf("after SIGTERM: %v, want exit 0", err)
	}
	assertClean(t, mnt)
	restored := filepath.Join(d, "restored.img")
	if out, err := exec.Command(filepath.Join(clitest.BinDir, "backy-restore"), "-b", repoDir, restored).CombinedOutput(); err != nil {
		t.Fatalf("backy-restore: %v: %s", err, out)
	}
	a, _ := os.ReadFile(copyImg)
	b, _ := os.ReadFile(restored)
	if !bytes.Equal(a, b) {
		t.Error("the revision changed: it no longer equals the dirty copy")
	}
}

// TestMountKilled: SIGKILL of the mount command leaves no mount (its
// helpers get SIGTERM from the kernel and unmount); when the helpers are
// killed too, the mounts stay stale until backy-nbd umount, or the next
// mount on the same directory, removes them.
func TestMountKilled(t *testing.T) {
	f := getMountFixture(t)
	mnt := filepath.Join(t.TempDir(), "mnt")

	m := startMount(t, f.repo, mnt, nil, "-r", "mbr")
	m.signal(t, syscall.SIGKILL)
	// the fuse2fs helpers unmount on their death signal; the image
	// directory served by the killed command stays, dead
	for deadline := time.Now().Add(10 * time.Second); len(fuseMountsBelow(t, mnt)) > 1; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("still mounted 10s after SIGKILL: %v", fuseMountsBelow(t, mnt))
		}
	}
	if ms := fuseMountsBelow(t, mnt); len(ms) != 1 || ms[0] != mnt+"/.images" {
		t.Fatalf("after SIGKILL: %v, want the dead image directory only", ms)
	}
	out, err := exec.Command("backy-nbd", "umount", mnt).CombinedOutput()
	if err != nil {
		t.Fatalf("backy-nbd umount: %v: %s", err, out)
	}
	if !strings.Contains(string(out), "unmounted "+mnt+"/.images, left by a backy-nbd mount that did not end cleanly") {
		t.Errorf("backy-nbd umount said:\n%s", out)
	}
	assertClean(t, mnt)

	// everything killed at once: stale mounts; the next mount cleans up
	m = startMount(t, f.repo, mnt, nil, "-r", "mbr")
	pids := helpersBelow(mnt)
	if len(pids) != 2 {
		t.Fatalf("helpers: %v, want fuse2fs p1 and p2", pids)
	}
	// stopped, the mount command cannot react to its helpers' death, and
	// killed after them, its death signal finds no helper to unmount
	m.cmd.Process.Signal(syscall.SIGSTOP)
	for _, pid := range pids {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	for deadline := time.Now().Add(10 * time.Second); len(helpersBelow(mnt)) > 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("helpers alive 10 s after SIGKILL: %v", helpersBelow(mnt))
		}
	}
	m.cmd.Process.Kill()
	<-m.done
	if ms := fuseMountsBelow(t, mnt); len(ms) != 3 {
		t.Fatalf("after killing everything %d mounts stay, want 3 stale ones: %v", len(ms), ms)
	}
	m = startMount(t, f.repo, mnt, nil, "-r", "gpt1")
	if !strings.Contains(m.stderr.String(), "left by a backy-nbd mount that did not end cleanly") {
		t.Errorf("the next mount did not say it cleaned up:\n%s", m.stderr.String())
	}
	if got := entries(t, mnt); got != ".backy-nbd.lock .images/ README.txt p1/ p1.img" {
		t.Errorf("mount point after the cleanup holds %q", got)
	}
	cpOut(t, nil, filepath.Join(mnt, "p1"), f.trees["c"])
	// umount stops a running mount too
	out, err = exec.Command("backy-nbd", "umount", mnt).CombinedOutput()
	if err != nil {
		t.Fatalf("backy-nbd umount of a running mount: %v: %s", err, out)
	}
	select {
	case <-m.done:
		if m.err != nil {
			t.Errorf("mount stopped by umount: %v, want exit 0", m.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("mount still running after umount")
	}
	assertClean(t, mnt)
}

// TestMountHelperDies: when a helper dies the mount command unmounts the
// rest and exits 1 naming it.
func TestMountHelperDies(t *testing.T) {
	f := getMountFixture(t)
	mnt := filepath.Join(t.TempDir(), "mnt")
	m := startMount(t, f.repo, mnt, nil, "-r", "gpt1")
	var fuse2fs int
	for _, pid := range helpersBelow(mnt) {
		if b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); strings.Contains(string(b), "fuse2fs") {
			fuse2fs = pid
		}
	}
	if fuse2fs == 0 {
		t.Fatal("no fuse2fs running")
	}
	syscall.Kill(fuse2fs, syscall.SIGKILL)
	select {
	case <-m.done:
	case <-time.After(30 * time.Second):
		t.Fatal("mount still running 30s after its fuse2fs died")
	}
	var ee *exec.ExitError
	if !errors.As(m.err, &ee) || ee.ExitCode() != 1 {
		t.Errorf("exit: %v, want 1", m.err)
	}
	if !regexp.MustCompile(`(?m)^backy-nbd: error: nbdmount: helper exited: fuse2fs p1 \(signal: killed\)$`).MatchString(m.stderr.String()) {
		t.Errorf("stderr:\n%s", m.stderr.String())
	}
	assertClean(t, mnt)
}

// builtFuse2fs is the fuse2fs scripts/deps.sh builds (e2fsprogs 1.47.4,
// patched, with libfuse2), which passes a read error of its device on as
// EIO.
const builtFuse2fs = "/usr/local/lib/backy/fuse2fs-1.47.4-backy1/fuse2fs"

// needBuiltFuse2fs skips the test when builtFuse2fs is not there, or fails
// it when BACKY_REQUIRE_TOOLS=1.
func needBuiltFuse2fs(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(builtFuse2fs); err != nil {
		if os.Getenv("BACKY_REQUIRE_TOOLS") == "1" {
			t.Fatalf("%v: scripts/deps.sh builds it (as root) (BACKY_REQUIRE_TOOLS=1)", err)
		}
		t.Skipf("%v: scripts/deps.sh builds it (as root)", err)
	}
}

// TestMountFuse2fsFallback: a file system the built fuse2fs refuses (the
// quota feature) is mounted by the one on PATH (Debian's) instead, which
// backy-nbd says, with what that means for a damaged chunk.
func TestMountFuse2fsFallback(t *testing.T) {
	needMountTools(t)
	needBuiltFuse2fs(t)
	t.Setenv("BACKY_FUSE2FS", "") // the default choice
	d := t.TempDir()
	tree := filepath.Join(d, "tree")
	if err := writeTree(tree, 11, mib); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(d, "quota.img")
	if err := makeSparse(img, 16*mib); err != nil {
		t.Fatal(err)
	}
	if err := runTool("mke2fs", "-q", "-F", "-t", "ext4", "-O", "quota", "-d", tree, img); err != nil {
		t.Fatal(err)
	}
	repoDir := filepath.Join(d, "repo")
	if _, err := pipeline(img, repoDir); err != nil {
		t.Fatal(err)
	}
	mnt := filepath.Join(d, "mnt")
	m := startMount(t, repoDir, mnt, nil)
	for _, re := range []string{
		`disk: fuse2fs ` + regexp.QuoteMeta(builtFuse2fs) + ` \(1\.47\.4-backy1\) refused it \(.*quotas not supported.*\), trying /\S+/fuse2fs \(1\.47\.0\)$`,
		`disk: whole disk \(no partition table\), ext4: files in `,
		`disk: fuse2fs /\S+/fuse2fs \(1\.47\.0\) would turn a read error into wrong bytes`,
	} {
		if !regexp.MustCompile("(?m)^backy-nbd: " + re).MatchString(m.stderr.String()) {
			t.Errorf("stderr does not match %s:\n%s", re, m.stderr.String())
		}
	}
	cpOut(t, nil, filepath.Join(mnt, "disk", "etc"), filepath.Join(tree, "etc"))
	if err := m.signal(t, syscall.SIGTERM); err != nil {
		t.Errorf("after SIGTERM: %v, want exit 0", err)
	}
	assertClean(t, mnt)
}

// TestMountDamagedChunk: a chunk under one file turns into EIO for that
// file with the fuse2fs scripts/deps.sh builds, which goes on serving the
// other files; with Debian's, which would turn the error into wrong
// bytes, the read fails with ENOTCONN (fuse2fs is killed under the read,
// see pkg/nbdmount/images.go) and the tree is mounted again. Either way
// the other files read back byte for byte, and never a wrong byte.
func TestMountDamagedChunk(t *testing.T) {
	f := getMountFixture(t)
	d := t.TempDir()
	repoDir := filepath.Join(d, "repo")
	if out, err := exec.Command("cp", "-a", f.repo, repoDir).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v: %s", err, out)
	}
	// the blocks of var/lib/db.dump in the plain disk (ext4, 1 KiB or 4 KiB blocks)
	out, err := exec.Command("/usr/sbin/debugfs", "-R", "stat /var/lib/db.dump", f.imgs["plain"]).CombinedOutput()
	if err != nil {
		t.Fatalf("debugfs: %v: %s", err, out)
	}
	bs := blockSize(t, f.imgs["plain"])
	ext := regexp.MustCompile(`\((\d+)(?:-\d+)?\):(\d+)(?:-(\d+))?`).FindAllStringSubmatch(string(out), -1)
	for i := range ext {
		ext[i] = ext[i][1:] // logical start, physical first, physical last
	}
	used := map[int64]bool{}
	for _, e := range ext {
		a, _ := strconv.ParseInt(e[1], 10, 64)
		b := a
		if e[2] != "" {
			b, _ = strconv.ParseInt(e[2], 10, 64)
		}
		for blk := a; blk <= b; blk++ {
			used[blk*bs/repo.ChunkSize] = true
		}
	}
	// a chunk whose every block belongs to the file, and the 256 KiB
	// before it too (a kernel read-ahead of the image that reaches the
	// chunk fails as well: pkg/nbdmount/images.go)
	var chunk int64 = -1
	for k := int64(1); k < 64 && chunk < 0; k++ {
		if !used[k] {
			continue
		}
		full := true
		for off := k*repo.ChunkSize - 256<<10; off < (k+1)*repo.ChunkSize; off += bs {
			full = full && fileHasBlock(ext, off/bs)
		}
		if full {
			chunk = k
		}
	}
	if chunk < 0 {
		t.Fatalf("db.dump covers no whole chunk:\n%s", out)
	}
	// the offset in db.dump of the chunk's first byte
	var damagedAt int64 = -1
	for _, e := range ext {
		logical, _ := strconv.ParseInt(e[0], 10, 64)
		first, _ := strconv.ParseInt(e[1], 10, 64)
		if fileHasBlock([][]string{e}, chunk*repo.ChunkSize/bs) {
			damagedAt = (logical + chunk*repo.ChunkSize/bs - first) * bs
		}
	}
	r, err := repo.Open(repoDir)
	if err != nil {
		t.Fatal(err)
	}
	rev, err := r.Find("plain")
	if err != nil {
		t.Fatal(err)
	}
	ix, err := r.Index(rev.ID)
	if err != nil {
		t.Fatal(err)
	}
	h := ix.Hashes[chunk].String()
	if err := clitest.FlipByte(filepath.Join(repoDir, "chunks", h[:2], h)); err != nil {
		t.Fatal(err)
	}
	tree := f.trees["a"]
	dump, err := os.ReadFile(filepath.Join(tree, "var/lib/db.dump"))
	if err != nil {
		t.Fatal(err)
	}
	damaged := damagedChunk{repoDir: repoDir, chunk: chunk, at: damagedAt, hash: h, rev: rev.ID, dump: dump, tree: tree, img: f.imgs["plain"]}

	t.Run("fixed", func(t *testing.T) {
		needBuiltFuse2fs(t)
		t.Setenv("BACKY_FUSE2FS", builtFuse2fs)
		mnt := filepath.Join(t.TempDir(), "mnt")
		m := startMount(t, repoDir, mnt, nil, "-r", "plain")
		pids := helpersBelow(mnt)
		if len(pids) != 1 {
			t.Fatalf("fuse2fs helpers: %v, want one", pids)
		}
		// exactly EIO, every time, and never a byte of the damaged chunk
		for i := 0; i < 2; i++ {
			b, err := os.ReadFile(filepath.Join(mnt, "disk/var/lib/db.dump"))
			if !errors.Is(err, syscall.EIO) {
				t.Fatalf("reading the file on the damaged chunk: %d bytes, %v, want EIO", len(b), err)
			}
		}
		// read in steps: the bytes before the damaged chunk are right, the
		// first read that reaches it fails
		fh, err := os.Open(filepath.Join(mnt, "disk/var/lib/db.dump"))
		if err != nil {
			t.Fatal(err)
		}
		var off int64
		for _, step := range []int{4096, 65536, 4096} {
			fh.Seek(0, io.SeekStart)
			buf := make([]byte, step)
			for off = 0; ; {
				n, err := fh.Read(buf)
				if n > 0 && !bytes.Equal(buf[:n], damaged.dump[off:off+int64(n)]) {
					t.Fatalf("reads of %d bytes: wrong bytes at %d", step, off)
				}
				off += int64(n)
				if err != nil {
					if !errors.Is(err, syscall.EIO) || off != damaged.at {
						t.Errorf("reads of %d bytes: %v at offset %d, want EIO at %d (the damaged chunk)", step, err, off, damaged.at)
					}
					break
				}
			}
		}
		fh.Close()
		damaged.checkOthers(t, mnt, m, false)
		// the rest of the tree, after the errors (an unpatched 1.47.4 had
		// every read that missed its cache fail with EBADF by now)
		for _, dir := range []string{"etc", "home", "srv"} {
			cpOut(t, nil, filepath.Join(mnt, "disk", dir), filepath.Join(damaged.tree, dir))
		}
		if got := helpersBelow(mnt); len(got) != 1 || got[0] != pids[0] {
			t.Errorf("fuse2fs after the errors: %v, want the same pid %v", got, pids)
		}
		select {
		case <-m.done:
			t.Fatalf("the mount ended: %v", m.err)
		default:
		}
		if strings.Contains(m.stderr.String(), "restarting fuse2fs") || strings.Contains(m.stderr.String(), "would turn a read error into wrong bytes") {
			t.Errorf("stderr:\n%s", m.stderr.String())
		}
		damaged.end(t, mnt, m)
	})

	t.Run("debian", func(t *testing.T) {
		debian := needTool(t, "fuse2fs")
		if v, _ := exec.Command(debian, "--version").CombinedOutput(); !strings.Contains(string(v), "fuse2fs 1.47.0 ") {
			t.Fatalf("%s is not Debian 12's fuse2fs (1.47.0):\n%s", debian, v)
		}
		t.Setenv("BACKY_FUSE2FS", debian)
		mnt := filepath.Join(t.TempDir(), "mnt")
		m := startMount(t, repoDir, mnt, nil, "-r", "plain")
		if !strings.Contains(m.stderr.String(), "disk: fuse2fs "+debian+" (1.47.0) would turn a read error into wrong bytes") {
			t.Errorf("stderr does not warn of the old fuse2fs:\n%s", m.stderr.String())
		}
		pids := helpersBelow(mnt)
		// the file on the damaged chunk fails (fuse2fs is killed under the
		// read), twice, never with bytes
		for i := 0; i < 2; i++ {
			// (once the tree is back: while fuse2fs restarts, it is an empty directory)
			for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
				if _, err := os.Stat(filepath.Join(mnt, "disk/etc/hostname")); err == nil {
					break
				}
			}
			b, err := os.ReadFile(filepath.Join(mnt, "disk/var/lib/db.dump"))
			if !errors.Is(err, syscall.ENOTCONN) {
				t.Errorf("reading the file on the damaged chunk: %d bytes, %v, want ENOTCONN", len(b), err)
			}
		}
		damaged.checkOthers(t, mnt, m, true)
		if got := helpersBelow(mnt); len(got) != 1 || len(pids) != 1 || got[0] == pids[0] {
			t.Errorf("fuse2fs before %v, after %v: want another one", pids, got)
		}
		if !strings.Contains(m.stderr.String(), "restarting fuse2fs, the read that met it fails") {
			t.Errorf("stderr:\n%s", m.stderr.String())
		}
		damaged.end(t, mnt, m)
	})
}

// damagedChunk is the repository of TestMountDamagedChunk.
type damagedChunk struct {
	repoDir   string
	chunk     int64
	at        int64 // offset in db.dump of the damaged chunk
	hash, rev string
	dump      []byte // db.dump as it was
	tree, img string
}

// checkOthers checks that the other files, and the image outside the
// damaged chunk, read back right, waiting for the tree to be mounted again
// when wait is set; that the image file gives EIO on the damaged chunk and
// keeps none of its pages; and that stderr names it.
func (c damagedChunk) checkOthers(t *testing.T, mnt string, m *mounted, wait bool) {
	t.Helper()
	for _, p := range []string{"etc/hostname", "etc/app/config.toml", "home/user/notes.txt", "srv/a name"} {
		var got []byte
		var err error
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			if got, err = os.ReadFile(filepath.Join(mnt, "disk", p)); err == nil || !wait || time.Now().After(deadline) {
				break
			}
		}
		want, _ := os.ReadFile(filepath.Join(c.tree, p))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s after the damaged read: %v, equal %v", p, err, bytes.Equal(got, want))
		}
	}
	// the image file: EIO on the damaged range, the rest right
	img, err := os.Open(filepath.Join(mnt, "disk.img"))
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	buf := make([]byte, 4096)
	if _, err := img.ReadAt(buf, c.chunk*repo.ChunkSize+8192); !errors.Is(err, syscall.EIO) {
		t.Errorf("disk.img in the damaged chunk: %v, want EIO", err)
	}
	want := make([]byte, 4096)
	raw, _ := os.Open(c.img)
	raw.ReadAt(want, 0)
	raw.Close()
	if _, err := img.ReadAt(buf, 0); err != nil || !bytes.Equal(buf, want) {
		t.Errorf("disk.img at 0: %v", err)
	}
	// the page cache: the read at 0 brought the whole first chunk in (its
	// store runs after the read: give it a moment), the damaged one has
	// no page
	all := repo.ChunkSize / os.Getpagesize()
	n := 0
	for deadline := time.Now().Add(10 * time.Second); n < all && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		n = residentPages(t, img, 0, repo.ChunkSize)
	}
	if n != all {
		t.Errorf("%d pages of chunk 0 of disk.img in the page cache after a read of its first 4 KiB, want %d", n, all)
	}
	if n := residentPages(t, img, c.chunk*repo.ChunkSize, repo.ChunkSize); n != 0 {
		t.Errorf("%d pages of the damaged chunk of disk.img in the page cache", n)
	}
	if !strings.Contains(m.stderr.String(), "repo: corrupt chunk "+c.hash+": content does not match its hash (revision "+c.rev+", chunk "+strconv.FormatInt(c.chunk, 10)+" at offset") {
		t.Errorf("stderr does not name the damaged chunk:\n%s", m.stderr.String())
	}
}

// end stops the mount with Ctrl-C and checks nothing is left.
func (c damagedChunk) end(t *testing.T, mnt string, m *mounted) {
	t.Helper()
	if err := m.signal(t, syscall.SIGINT); err != nil {
		t.Errorf("after SIGINT: %v", err)
	}
	assertClean(t, mnt)
}

// residentPages counts the pages of f in [off, off+n) that are in the
// page cache (mincore of a mapping that is never touched).
func residentPages(t *testing.T, f *os.File, off, n int64) int {
	t.Helper()
	m, err := syscall.Mmap(int(f.Fd()), off, int(n), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		t.Fatalf("mmap: %v", err)
	}
	defer syscall.Munmap(m)
	vec := make([]byte, (int(n)+os.Getpagesize()-1)/os.Getpagesize())
	if _, _, e := syscall.Syscall(syscall.SYS_MINCORE, uintptr(unsafe.Pointer(&m[0])), uintptr(n), uintptr(unsafe.Pointer(&vec[0]))); e != 0 {
		t.Fatalf("mincore: %v", e)
	}
	c := 0
	for _, v := range vec {
		c += int(v & 1)
	}
	return c
}

func fileHasBlock(ext [][]string, blk int64) bool {
	for _, e := range ext {
		a, _ := strconv.ParseInt(e[1], 10, 64)
		b := a
		if e[2] != "" {
			b, _ = strconv.ParseInt(e[2], 10, 64)
		}
		if blk >= a && blk <= b {
			return true
		}
	}
	return false
}

func blockSize(t *testing.T, img string) int64 {
	out, err := exec.Command("/usr/sbin/dumpe2fs", "-h", img).CombinedOutput()
	if err != nil {
		t.Fatalf("dumpe2fs: %v: %s", err, out)
	}
	m := regexp.MustCompile(`(?m)^Block size:\s+(\d+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("no block size:\n%s", out)
	}
	n, _ := strconv.ParseInt(string(m[1]), 10, 64)
	return n
}

// TestMountUnprivileged mounts as nobody: FUSE through the setuid
// fusermount3, fuse2fs with fakeroot so that a private file of root's
// reads back; nobody copies the tree out, and Ctrl-C unmounts.
func TestMountUnprivileged(t *testing.T) {
	f := getMountFixture(t)
	if os.Geteuid() != 0 {
		t.Skip("needs root to become nobody")
	}
	setpriv := needTool(t, "setpriv")
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(nobody.Uid)
	gid, _ := strconv.Atoi(nobody.Gid)
	// Debian makes /dev/fuse 0666; some containers make it 0600
	if fi, err := os.Stat("/dev/fuse"); err == nil && fi.Mode().Perm()&0o006 != 0o006 {
		t.Logf("/dev/fuse is %v: making it 0666 (Debian's default) for this test", fi.Mode().Perm())
		os.Chmod("/dev/fuse", 0o666)
		t.Cleanup(func() { os.Chmod("/dev/fuse", fi.Mode().Perm()) })
	}
	d, err := os.MkdirTemp("", "backy-mount-nobody-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	os.Chmod(d, 0o755)
	repoDir := filepath.Join(d, "repo")
	if out, err := exec.Command("cp", "-a", f.repo, repoDir).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v: %s", err, out)
	}
	// the command itself, where nobody can run it (the test binary as backy-nbd)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(d, "bin")
	os.Mkdir(bin, 0o755)
	if out, err := exec.Command("cp", self, filepath.Join(bin, "backy-nbd")).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v: %s", err, out)
	}
	mnt := filepath.Join(d, "mnt")
	os.Mkdir(mnt, 0o755)
	for _, p := range []string{repoDir, mnt} {
		if out, err := exec.Command("chown", "-R", fmt.Sprintf("%d:%d", uid, gid), p).CombinedOutput(); err != nil {
			t.Fatalf("chown: %v: %s", err, out)
		}
	}
	wrap := []string{setpriv, "--reuid=" + nobody.Uid, "--regid=" + nobody.Gid, "--clear-groups", "--", "env", "PATH=" + bin + ":/usr/bin:/bin", "HOME=/"}
	m := startMount(t, repoDir, mnt, wrap, "-r", "mbr")
	if err := exec.Command(wrap[0], append(wrap[1:], "test", "-r", filepath.Join(mnt, "p1/root/secret"))...).Run(); err != nil {
		t.Errorf("nobody cannot read root's private file through the mount: %v", err)
	}
	// cp -a as nobody cannot give files to root: compare content and modes
	out := filepath.Join(d, "out")
	os.Mkdir(out, 0o755)
	os.Chmod(out, 0o777)
	if b, err := exec.Command(wrap[0], append(wrap[1:], "cp", "-a", filepath.Join(mnt, "p1"), filepath.Join(out, "p1"))...).CombinedOutput(); err != nil {
		t.Fatalf("cp -a as nobody: %v: %s", err, b)
	}
	sameTree(t, f.trees["a"], filepath.Join(out, "p1"))
	if err := m.signal(t, syscall.SIGINT); err != nil {
		t.Errorf("after SIGINT: %v:\n%s", err, m.stderr.String())
	}
	assertClean(t, mnt)
}

// TestMountMissingHelper: without fusermount3 (or, for an ext partition,
// fuse2fs) on PATH the mount names the Debian package, exits 6 and leaves
// the mount point as it was.
func TestMountMissingHelper(t *testing.T) {
	f := getMountFixture(t)
	d := t.TempDir()
	bin := filepath.Join(d, "bin")
	os.Mkdir(bin, 0o755)
	self, _ := os.Executable()
	os.Symlink(self, filepath.Join(bin, "backy-nbd"))
	mnt := filepath.Join(d, "mnt")
	os.Mkdir(mnt, 0o755)
	cleanupMounts(t, mnt)
	try := func(want string, env ...string) {
		t.Helper()
		cmd := exec.Command(filepath.Join(bin, "backy-nbd"), "-b", f.repo, "mount", "-r", "mbr", mnt)
		// BACKY_FUSE2FS=fuse2fs: only the one on PATH (not the one
		// scripts/deps.sh builds)
		cmd.Env = append(append(os.Environ(), "PATH="+bin, "BACKY_FUSE2FS=fuse2fs"), env...)
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 6 || strings.TrimSpace(string(out)) != want {
			t.Errorf("%v: %s\nwant exit 6 and %s", err, out, want)
		}
		assertClean(t, mnt)
	}
	try("backy-nbd: error: nbdmount: helper program not found: fusermount3 (install the Debian package fuse3)")
	for _, n := range []string{"fusermount3"} {
		p, _ := lookTool(n)
		os.Symlink(p, filepath.Join(bin, n))
	}
	try("backy-nbd: error: nbdmount: helper program not found: fuse2fs (install the Debian package fuse2fs)")
	// a BACKY_FUSE2FS that is not there is named, not replaced by another;
	// a name of no known helper gets no package hint but the variable
	try("backy-nbd: error: nbdmount: helper program not found: BACKY_FUSE2FS=nosuchfuse2fs: not on PATH, nor in /usr/sbin or /sbin",
		"BACKY_FUSE2FS=nosuchfuse2fs")
	missing := filepath.Join(d, "no", "fuse2fs")
	try(`backy-nbd: error: nbdmount: helper program not found: BACKY_FUSE2FS=`+missing+`: exec: "`+missing+`": stat `+missing+`: no such file or directory`,
		"BACKY_FUSE2FS="+missing)
}
