package main

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/backy/backy/internal/clitest"
)

// TestFailedCreationKeepsMode: a store into a directory its user owns but
// made read-only fails (exit 1) and leaves the directory as it was, mode
// included: the repository's mode was closed before the layout was tried,
// so the 555 directory became 500.
func TestFailedCreationKeepsMode(t *testing.T) {
	dir := clitest.OtherUsersDir(t)
	// This test binary runs as backy-store under that name (clitest.Main).
	bin := filepath.Join(dir, "backy-store")
	self, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, self, 0o755); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(dir, "v.img")
	if err := os.WriteFile(img, bytes.Repeat([]byte("backy"), 1<<18), 0o644); err != nil {
		t.Fatal(err)
	}
	stream, err := exec.Command(filepath.Join(clitest.BinDir, "backy-extract"), "file", img).Output()
	if err != nil {
		t.Fatal(err)
	}
	ro := filepath.Join(dir, "ro")
	if err := os.Mkdir(ro, 0o555); err != nil {
		t.Fatal(err)
	}
	os.Chown(ro, 65534, 65534) // its own: it could open it, and did close it
	os.Chmod(ro, 0o555)

	c := exec.Command(bin, "-b", ro)
	c.Stdin = bytes.NewReader(stream)
	var stderr bytes.Buffer
	c.Stdout, c.Stderr = io.Discard, &stderr
	c.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534, Groups: []uint32{}}}
	err = c.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("store as nobody into a 555 directory: %v, want exit 1\n%s", err, stderr.String())
	}
	if want := "backy-store: error: fsperm: mkdir " + ro + "/chunks: permission denied\n"; stderr.String() != want {
		t.Errorf("stderr %q, want %q", stderr.String(), want)
	}
	st, err := os.Stat(ro)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o555 {
		t.Errorf("mode %o after the failed store, want 555", st.Mode().Perm())
	}
	if entries, _ := os.ReadDir(ro); len(entries) != 0 {
		t.Errorf("the failed store left %v", entries)
	}
}

// TestOnlyTheOwnerWrites: a repository belongs to the user that made it.
// Root's store, purge or forget in another user's repository is refused
// (files root made there, that user could not read or remove: their next
// backup failed and their revisions read as damaged), and so is a change
// of a repository whose tmp/ or locks/ file is a symbolic link (whoever
// put it there had root delete or truncate what it names). A metadata file
// the owner cannot read is a permission error, not damage to forget.
func TestOnlyTheOwnerWrites(t *testing.T) {
	dir := clitest.OtherUsersDir(t)
	bin := filepath.Join(dir, "backy-store") // this test binary, as backy-store
	self, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, self, 0o755); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(dir, "v.img")
	if err := os.WriteFile(img, bytes.Repeat([]byte("backy"), 1<<18), 0o644); err != nil {
		t.Fatal(err)
	}
	stream, err := exec.Command(filepath.Join(clitest.BinDir, "backy-extract"), "file", img).Output()
	if err != nil {
		t.Fatal(err)
	}
	nobody := &syscall.Credential{Uid: 65534, Gid: 65534, Groups: []uint32{}}
	run := func(as *syscall.Credential, stdin []byte, args ...string) (int, string) {
		t.Helper()
		c := exec.Command(bin, args...)
		if stdin != nil {
			c.Stdin = bytes.NewReader(stdin)
		}
		var stderr bytes.Buffer
		c.Stdout, c.Stderr = io.Discard, &stderr
		if as != nil {
			c.SysProcAttr = &syscall.SysProcAttr{Credential: as}
		}
		return clitest.ExitCode(t, c.Run()), stderr.String()
	}
	digest := func(d string) string {
		t.Helper()
		s, err := clitest.TreeDigest(d)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}

	home := filepath.Join(dir, "home")
	os.Mkdir(home, 0o700)
	os.Chown(home, 65534, 65534)
	theirs := filepath.Join(home, "r")
	if code, stderr := run(nobody, stream, "-b", theirs); code != 0 {
		t.Fatalf("store as nobody: exit %d: %s", code, stderr)
	}
	before := digest(theirs)
	for _, args := range [][]string{{"-b", theirs}, {"-b", theirs, "purge"}, {"-b", theirs, "forget", "-r", "latest", "--force"}, {"-b", theirs, "verify"}} {
		var in []byte
		if len(args) == 2 {
			in = stream
		}
		code, stderr := run(nil, in, args...)
		want := "backy-store: error: repo: not this user's own repository: " + theirs + " belongs to uid 65534, this process runs as uid 0: run backy as the repository's owner\n"
		if code != 1 || stderr != want {
			t.Errorf("root: backy-store %v: exit %d, %q; want exit 1, %q", args[2:], code, stderr, want)
		}
	}
	if after := digest(theirs); after != before {
		t.Error("the refused commands changed the repository")
	}
	// root reads it as before
	if code, stderr := run(nil, nil, "-b", theirs, "status"); code != 0 {
		t.Errorf("root: status: exit %d: %s", code, stderr)
	}

	// a metadata file its owner cannot read (as root's store left them)
	revs, _ := filepath.Glob(filepath.Join(theirs, "revisions", "*.rev"))
	if len(revs) != 1 {
		t.Fatalf("revisions: %v", revs)
	}
	os.Chown(revs[0], 0, 0)
	for _, args := range [][]string{{"status"}, {"verify"}, {"forget", "-r", strings.TrimSuffix(filepath.Base(revs[0]), ".rev")}} {
		code, stderr := run(nobody, nil, append([]string{"-b", theirs}, args...)...)
		if want := "backy-store: error: repo: open " + revs[0] + ": permission denied\n"; code != 1 || stderr != want {
			t.Errorf("nobody: backy-store %v with a metadata file of root's: exit %d, %q; want exit 1, %q", args, code, stderr, want)
		}
	}
	if _, err := os.Stat(revs[0]); err != nil {
		t.Errorf("the revision went: %v", err)
	}

	// root's own repository, with tmp/ and the store lock pointing away
	mine := filepath.Join(dir, "mine")
	if code, stderr := run(nil, stream, "-b", mine); code != 0 {
		t.Fatalf("store as root: exit %d: %s", code, stderr)
	}
	victim := filepath.Join(dir, "victim")
	os.MkdirAll(filepath.Join(victim, "sub"), 0o755)
	os.WriteFile(filepath.Join(victim, "file"), []byte("keep me"), 0o644)
	os.RemoveAll(filepath.Join(mine, "tmp"))
	os.Symlink(victim, filepath.Join(mine, "tmp"))
	code, stderr := run(nil, nil, "-b", mine, "purge")
	if want := "backy-store: error: repo: not this user's own repository: " + mine + "/tmp is a symbolic link: a repository's directories must be its own\n"; code != 1 || stderr != want {
		t.Errorf("purge with tmp a symbolic link: exit %d, %q; want exit 1, %q", code, stderr, want)
	}
	os.Remove(filepath.Join(mine, "tmp"))
	os.Mkdir(filepath.Join(mine, "tmp"), 0o700)
	os.Remove(filepath.Join(mine, "locks", "store"))
	os.Symlink(filepath.Join(victim, "file"), filepath.Join(mine, "locks", "store"))
	code, stderr = run(nil, stream, "-b", mine)
	if code != 1 || !strings.Contains(stderr, "too many levels of symbolic links") {
		t.Errorf("store with the store lock a symbolic link: exit %d, %q; want exit 1, too many levels of symbolic links", code, stderr)
	}
	if b, err := os.ReadFile(filepath.Join(victim, "file")); err != nil || string(b) != "keep me" {
		t.Errorf("the victim file holds %q (%v)", b, err)
	}
	if _, err := os.Stat(filepath.Join(victim, "sub")); err != nil {
		t.Errorf("the victim directory lost sub/: %v", err)
	}
}
