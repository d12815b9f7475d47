package fsperm

import (
	"io/fs"
	"os"
	"path/filepath"
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
}
