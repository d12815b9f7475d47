package main

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
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
