// Package fsperm decides who may read what backy writes: repositories, logs
// and the daemon's status file are private to their owner, or also readable
// by one group, whatever the umask (docs/reliability.md, "Who can read a
// backup").
//
// The rule: a directory that is open to its group and closed to everyone
// else (mode 750, 2750) shares what backy makes in it with that group
// (directories 750, files 640, owned by the directory's group); any other
// directory (700, or 755, the mode umask 022 gives) keeps it private to the
// owner (700, 600). Nothing backy makes is ever readable by others.
//
// WriteFile is how backy replaces a small file (metadata, an index, the
// status file) whole and durably, with its mode. IsBlockDevice tells the
// one kind of device backy reads images from and restores onto.
package fsperm

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// Mode is how to make files and directories in one place.
type Mode struct {
	Group bool // share with the group GID
	GID   int
}

// Private is the mode that shares with nobody.
var Private = Mode{}

// Of returns the mode for what is made in dir: shared with dir's group
// when dir is open to its group (read and search) and closed to others.
// A directory that cannot be read is Private.
func Of(dir string) Mode {
	st, err := os.Stat(dir)
	if err != nil {
		return Private
	}
	p := st.Mode().Perm()
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok || p&0o007 != 0 || p&0o050 != 0o050 {
		return Private
	}
	return Mode{Group: true, GID: int(sys.Gid)}
}

// File is the mode of a file.
func (m Mode) File() fs.FileMode {
	if m.Group {
		return 0o640
	}
	return 0o600
}

// ReadOnly is the mode of a file never written again (a chunk).
func (m Mode) ReadOnly() fs.FileMode {
	if m.Group {
		return 0o440
	}
	return 0o400
}

// Dir is the mode of a directory.
func (m Mode) Dir() fs.FileMode {
	if m.Group {
		return 0o750
	}
	return 0o700
}

// SetFile gives an open file its mode exactly (the umask may have taken
// bits away) and, when shared, the group. If the group cannot be set (the
// owner is not in it), the file stays private.
func (m Mode) SetFile(f *os.File, mode fs.FileMode) error {
	if m.Group {
		if err := f.Chown(-1, m.GID); err != nil {
			mode &^= 0o070
		}
	}
	if err := f.Chmod(mode); err != nil {
		return fmt.Errorf("fsperm: %w", err)
	}
	return nil
}

// Set gives the file or directory at path the mode (File or Dir by kind)
// and, when shared, the group; like SetFile.
func (m Mode) Set(path string) error {
	st, err := os.Lstat(path)
	if err != nil {
		return fmt.Errorf("fsperm: %w", err)
	}
	mode := m.File()
	if st.IsDir() {
		mode = m.Dir() | st.Mode()&fs.ModeSetgid
	}
	if m.Group {
		if err := os.Lchown(path, -1, m.GID); err != nil {
			mode &^= 0o070
		}
	}
	if err := os.Chmod(path, mode); err != nil {
		return fmt.Errorf("fsperm: %w", err)
	}
	return nil
}

// Mkdir makes the directory path with the mode exactly; one that exists
// already is left as it is.
func (m Mode) Mkdir(path string) error {
	err := os.Mkdir(path, m.Dir())
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("fsperm: %w", err)
	}
	return m.Set(path)
}

// MkdirAll makes path and its missing parents private, the way a base
// directory begins, and returns nil if path is a directory already.
func MkdirAll(path string) error {
	return mkdirAll(path, func(string) Mode { return Private })
}

// MkdirAllLikeParent makes path and its missing parents each the way Of
// its parent says: below a directory shared with its group (750), what a
// job's repository or the status file needs on the way is shared too, so
// that backy-check run by a monitoring user reaches it.
func MkdirAllLikeParent(path string) error {
	return mkdirAll(path, func(p string) Mode { return Of(filepath.Dir(p)) })
}

func mkdirAll(path string, mode func(string) Mode) error {
	if st, err := os.Stat(path); err == nil {
		if !st.IsDir() {
			return fmt.Errorf("fsperm: %s: %w", path, syscall.ENOTDIR)
		}
		return nil
	}
	if parent := filepath.Dir(path); parent != path {
		if err := mkdirAll(parent, mode); err != nil {
			return err
		}
	}
	return mode(path).Mkdir(path)
}

// Restrict takes away every permission of path beyond the mode (Dir or
// File by kind): what a backy before this one made 755 and 644 (or 444)
// closes to others, and to the group unless it is shared.
func (m Mode) Restrict(path string) error {
	st, err := os.Lstat(path)
	if err != nil {
		return fmt.Errorf("fsperm: %w", err)
	}
	if !st.Mode().IsDir() && !st.Mode().IsRegular() {
		return nil // a symbolic link is never followed: chmod would change its target
	}
	limit := m.File() | 0o100
	if st.IsDir() {
		limit = m.Dir()
	}
	p := st.Mode().Perm()
	if p&^limit == 0 {
		return nil
	}
	if err := os.Chmod(path, p&limit|st.Mode()&(fs.ModeSetgid|fs.ModeSticky)); err != nil {
		return fmt.Errorf("fsperm: %w", err)
	}
	return nil
}

// WriteFile publishes data at path as a file of mode m.File(): a temporary
// file in tmpDir is written, synced and renamed over path, then path's
// directory is synced. Readers see the old file or the new one, never a
// part, and neither a crash nor a power cut leaves an empty or half file.
// Its errors name path (the temporary file is gone by then).
func (m Mode) WriteFile(tmpDir, path string, data []byte) error {
	if err := m.writeFile(tmpDir, path, data); err != nil {
		return fmt.Errorf("fsperm: writing %s: %w", path, err)
	}
	return nil
}

// IsTemp reports whether name is that of a temporary file WriteFile made
// for path (one a crash or kill left behind).
func IsTemp(name, path string) bool { return strings.HasPrefix(name, tempPrefix(path)) }

// tempPrefix begins the names of WriteFile's temporary files for path.
func tempPrefix(path string) string { return "." + filepath.Base(path) + ".tmp" }

func (m Mode) writeFile(tmpDir, path string, data []byte) error {
	f, err := os.CreateTemp(tmpDir, tempPrefix(path)+"*")
	if err != nil {
		return err
	}
	err = m.SetFile(f, m.File())
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
		return err
	}
	return syncPath(filepath.Dir(path))
}

// Sync makes a file's data, or a directory's entries (creations, renames,
// removals), durable.
func Sync(path string) error {
	if err := syncPath(path); err != nil {
		return fmt.Errorf("fsperm: %w", err)
	}
	return nil
}

func syncPath(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// IsBlockDevice reports whether m is a block device's mode: ModeDevice
// without ModeCharDevice (character devices, /dev/null, have ModeDevice
// too).
func IsBlockDevice(m fs.FileMode) bool {
	return m&fs.ModeDevice != 0 && m&fs.ModeCharDevice == 0
}
