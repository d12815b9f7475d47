package repo

import (
	"os"
	"path/filepath"
	"testing"
)

// While backy-store creates a repository (subdirectories made, marker not
// yet written), the newest revision of it is none: backy-extract --base-from
// started beside it writes a full stream instead of failing (it failed the
// first backup of a new backy-schedule job now and then).
func TestNewestRevisionWhileBeingCreated(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "vm1")
	for _, sub := range []string{"chunks", "revisions", "tmp", "locks"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(dir, "tmp", "marker-temp"), []byte("x"), 0o600)
	if r, rev, err := NewestRevision(dir); r != nil || rev != nil || err != nil {
		t.Fatalf("NewestRevision while being created = %v, %v, %v; want none", r, rev, err)
	}
	// Anything else in it is still no repository.
	os.WriteFile(filepath.Join(dir, "disk.img"), []byte("x"), 0o600)
	if _, _, err := NewestRevision(dir); err == nil {
		t.Fatal("a directory with other files is taken for a new repository")
	}
}
