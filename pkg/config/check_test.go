package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckSources(t *testing.T) {
	dir := t.TempDir()
	image := filepath.Join(dir, "vm1.img")
	if err := os.WriteFile(image, []byte("disk"), 0o600); err != nil {
		t.Fatal(err)
	}
	doc := `
[schedules.default]
daily = { interval = "1d", keep = 9 }
[jobs.present]
schedule = "default"
source = { type = "file", path = "` + image + `" }
[jobs.gone]
schedule = "default"
source = { type = "file", path = "` + filepath.Join(dir, "gone.img") + `" }
[jobs.dir]
schedule = "default"
source = { type = "file", path = "` + dir + `" }
[jobs.ceph]
schedule = "default"
source = { type = "rbd", pool = "rbd", image = "nowhere" }
`
	c, err := Parse("t", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Jobs["present"].CheckSource(); err != nil {
		t.Errorf("present: %v", err)
	}
	if err := c.Jobs["ceph"].CheckSource(); err != nil {
		t.Errorf("rbd sources are not checked, got %v", err)
	}
	err = c.Jobs["gone"].CheckSource()
	if !errors.Is(err, ErrSourceMissing) || !errors.Is(err, fs.ErrNotExist) || errors.Is(err, ErrInvalid) {
		t.Errorf("gone: %v", err)
	}
	if err := c.Jobs["dir"].CheckSource(); !errors.Is(err, ErrSourceMissing) || !strings.Contains(err.Error(), "neither a file nor a block device") {
		t.Errorf("dir: %v", err)
	}
	all := c.CheckSources()
	if all == nil {
		t.Fatal("CheckSources() = nil")
	}
	lines := strings.Split(all.Error(), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], `job "dir"`) || !strings.Contains(lines[1], `job "gone"`) {
		t.Errorf("CheckSources() = %q", lines)
	}
	if !strings.HasPrefix(lines[1], "config: source missing: job \"gone\": stat ") {
		t.Errorf("message %q", lines[1])
	}
}
