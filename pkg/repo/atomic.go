package repo

import (
	"fmt"

	"os"
	"path/filepath"

	"github.com/backy/backy/pkg/fsperm"
)

// writeFileAtomic publishes data at path: write a temp file in tmpDir,
// fsync it, rename it over path, fsync path's directory. Readers see either
// the old or the new file, never a part.
func writeFileAtomic(tmpDir, path string, data []byte, perm fsperm.Mode) error {
	f, err := os.CreateTemp(tmpDir, filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("repo: %w", err)
	}
	if err := perm.SetFile(f, perm.File()); err != nil {
		f.Close()
		os.Remove(f.Name())
		return err
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("repo: write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("repo: sync %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("repo: close %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("repo: %w", err)
	}
	ok = true
	return syncDir(filepath.Dir(path))
}

// syncDir makes the entries of dir (creations, renames, removals) durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("repo: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("repo: sync %s: %w", dir, err)
	}
	return nil
}
