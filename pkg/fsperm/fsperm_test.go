package fsperm

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestModesWhateverTheUmask(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	dir := t.TempDir()
	shared := filepath.Join(dir, "shared")
	os.Mkdir(shared, 0o750)
	os.Chmod(shared, 0o750)
	open := filepath.Join(dir, "open")
	os.Mkdir(open, 0o755)
	for _, c := range []struct {
		dir        string
		group      bool
		file, mode fs.FileMode
	}{
		{shared, true, 0o640, 0o750},
		{open, false, 0o600, 0o700}, // 755, as umask 022 makes: not a choice to share
		{dir, false, 0o600, 0o700},  // 700
	} {
		m := Of(c.dir)
		if m.Group != c.group {
			t.Errorf("%s: group %v, want %v", c.dir, m.Group, c.group)
		}
		sub := filepath.Join(c.dir, "d")
		if err := m.Mkdir(sub); err != nil {
			t.Fatal(err)
		}
		f, err := os.Create(filepath.Join(c.dir, "f"))
		if err != nil {
			t.Fatal(err)
		}
		if err := m.SetFile(f, m.File()); err != nil {
			t.Fatal(err)
		}
		f.Close()
		for p, want := range map[string]fs.FileMode{sub: c.mode, f.Name(): c.file} {
			if st, _ := os.Stat(p); st.Mode().Perm() != want {
				t.Errorf("%s: mode %v, want %v", p, st.Mode().Perm(), want)
			}
		}
	}
	if err := Of(open).Restrict(open); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(open); st.Mode().Perm() != 0o700 {
		t.Errorf("restricted 755 directory: %v", st.Mode().Perm())
	}
	if err := MkdirAll(filepath.Join(dir, "a", "b")); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{filepath.Join(dir, "a"), filepath.Join(dir, "a", "b")} {
		if st, _ := os.Stat(p); st.Mode().Perm() != 0o700 {
			t.Errorf("%s: %v, want 0700", p, st.Mode().Perm())
		}
	}
	// Like its parent: shared below a shared directory (a job's nested
	// repository, the status file's directory), private below any other.
	for base, want := range map[string]fs.FileMode{shared: 0o750, open: 0o700, filepath.Join(dir, "a"): 0o700} {
		if err := MkdirAllLikeParent(filepath.Join(base, "x", "y")); err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{filepath.Join(base, "x"), filepath.Join(base, "x", "y")} {
			if st, _ := os.Stat(p); st.Mode().Perm() != want {
				t.Errorf("%s: %v, want %v", p, st.Mode().Perm(), want)
			}
		}
	}
	// A path that is, or runs through, a file is no directory to make.
	file := filepath.Join(dir, "f")
	for _, p := range []string{file, filepath.Join(file, "x")} {
		for name, mkdir := range map[string]func(string) error{"MkdirAll": MkdirAll, "MkdirAllLikeParent": MkdirAllLikeParent} {
			if err := mkdir(p); !errors.Is(err, syscall.ENOTDIR) {
				t.Errorf("%s(%s): %v, want ENOTDIR", name, p, err)
			}
		}
	}
}

// TestWriteFile: the file gets the mode of its directory and replaces the
// old one whole; the temporary file (in another directory here, as
// repo's tmp/) is gone after success and after a failed rename, which
// leaves what was there and names the path.
func TestWriteFile(t *testing.T) {
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	dir := t.TempDir()
	shared, tmp := filepath.Join(dir, "shared"), filepath.Join(dir, "tmp")
	os.Mkdir(shared, 0o750)
	os.Chmod(shared, 0o750)
	os.Mkdir(tmp, 0o700)
	m := Of(shared)
	path := filepath.Join(shared, "meta")
	for _, data := range []string{"first", "second, longer"} {
		if err := m.WriteFile(tmp, path, []byte(data)); err != nil {
			t.Fatal(err)
		}
		if b, err := os.ReadFile(path); err != nil || string(b) != data {
			t.Errorf("%s holds %q, %v; want %q", path, b, err, data)
		}
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o640 {
			t.Errorf("%s: mode %v, %v; want 0640", path, fi.Mode().Perm(), err)
		}
	}
	target := filepath.Join(shared, "adir") // a rename over a directory fails
	os.Mkdir(target, 0o750)
	os.WriteFile(filepath.Join(target, "x"), nil, 0o600)
	err := m.WriteFile(tmp, target, []byte("x"))
	if err == nil || !strings.Contains(err.Error(), "fsperm: writing "+target+": ") {
		t.Errorf("write over a directory: %v, want an error naming %s", err, target)
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
	if _, err := os.Stat(filepath.Join(target, "x")); err != nil {
		t.Errorf("the failed write changed %s: %v", target, err)
	}
}

// IsTemp knows the names of WriteFile's temporary files for a path and
// nothing else.
func TestIsTemp(t *testing.T) {
	for name, want := range map[string]bool{
		".backy-repository.tmp4711": true,
		"backy-repository":          false,
		".backy-repository":         false,
		".status.tmp4711":           false,
		"backy-repository.tmp4711":  false,
	} {
		if got := IsTemp(name, "/r/backy-repository"); got != want {
			t.Errorf("IsTemp(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestIsBlockDevice(t *testing.T) {
	for m, want := range map[fs.FileMode]bool{
		fs.ModeDevice | 0o660:                     true,
		fs.ModeDevice | fs.ModeCharDevice | 0o666: false, // /dev/null
		0o644:              false,
		fs.ModeDir | 0o755: false,
	} {
		if got := IsBlockDevice(m); got != want {
			t.Errorf("IsBlockDevice(%v) = %v, want %v", m, got, want)
		}
	}
}
