package nbdtest

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// MountFUSE presents the NBD export at uri as the file mnt/nbd with nbdfuse
// (the file-restore recipe needs no kernel NBD module), waits until that
// file has size bytes, and returns its path. A cleanup registered now
// unmounts it with fusermount3 and waits for nbdfuse to exit; register it
// after the server's cleanup so that it runs first.
func MountFUSE(t testing.TB, nbdfuse, fusermount, mnt, uri string, size int64) string {
	t.Helper()
	if err := os.MkdirAll(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(nbdfuse, mnt, uri)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		if _, err := Run(fusermount, "-u", mnt); err != nil {
			t.Log(err)
		}
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
			t.Error("nbdfuse did not exit after fusermount3 -u")
		}
	})
	dev := filepath.Join(mnt, "nbd")
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if fi, err := os.Stat(dev); err == nil && fi.Size() == size {
			return dev
		}
		select {
		case err := <-exited:
			t.Fatalf("nbdfuse exited: %v: %s", err, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("nbdfuse did not mount %s: %s", dev, stderr.String())
		}
	}
}
