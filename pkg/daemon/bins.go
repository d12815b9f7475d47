package daemon

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/backy/backy/pkg/exitcode"
)

// ErrNoProgram is returned when a backy command the runs need is missing.
var ErrNoProgram = exitcode.New(exitcode.NotFound, "daemon: program not found")

// FindBins finds backy-extract and backy-store next to the daemon's own
// executable, so that an installation is used as a whole, or else on PATH.
// It returns the environment for the children: the daemon's, with the
// directory of the backy commands first on PATH, so a command source's
// shell finds the same backy-extract.
func FindBins() (Bins, []string, error) {
	self, err := os.Executable()
	if err == nil {
		self, err = filepath.EvalSymlinks(self)
	}
	if err != nil {
		return Bins{}, nil, fmt.Errorf("daemon: own executable: %w", err)
	}
	find := func(name string) (string, error) {
		p := filepath.Join(filepath.Dir(self), name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
		p, err := exec.LookPath(name)
		if err != nil {
			return "", fmt.Errorf("%w: %s is neither next to %s nor on PATH", ErrNoProgram, name, self)
		}
		return filepath.Abs(p)
	}
	var b Bins
	if b.Extract, err = find("backy-extract"); err != nil {
		return Bins{}, nil, err
	}
	if b.Store, err = find("backy-store"); err != nil {
		return Bins{}, nil, err
	}
	b.Shell = "/bin/sh"
	return b, withPath(os.Environ(), filepath.Dir(b.Store)), nil
}

// withPath returns env with dir first on PATH.
func withPath(env []string, dir string) []string {
	out := make([]string, 0, len(env)+1)
	path := "PATH=" + dir
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			if v != "" {
				path += string(os.PathListSeparator) + v
			}
			continue
		}
		out = append(out, kv)
	}
	return append(out, path)
}
