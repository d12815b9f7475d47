package daemon

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/backy/backy/pkg/config"
	"github.com/backy/backy/pkg/exitcode"
	"github.com/backy/backy/pkg/flock"
	"github.com/backy/backy/pkg/fsperm"
)

// ErrRunning is returned when another daemon holds the base directory.
var ErrRunning = exitcode.New(exitcode.Busy, "daemon: another backy-schedule is running")

// privateDirs makes base (private, if it is missing) and the directories
// below it, shared with base's group when base is 750, else private
// (pkg/fsperm), and closes what a backy before fsperm left open to all.
func privateDirs(base string, dirs ...string) error {
	if err := fsperm.MkdirAll(base); err != nil {
		return fmt.Errorf("daemon: %w", err)
	}
	perm := fsperm.Of(base)
	for _, d := range append([]string{base}, dirs...) {
		if err := perm.Mkdir(d); err != nil {
			return fmt.Errorf("daemon: %w", err)
		}
		if err := perm.Restrict(d); err != nil {
			return fmt.Errorf("daemon: %w", err)
		}
	}
	return nil
}

// lockBase takes the daemon lock of baseDir, creating the state directory.
// Two daemons on one base directory would run every job twice and fight
// over the repositories' locks, so the second one must not start. The lock
// is flock(2): the kernel drops it when the daemon dies, however it dies.
func lockBase(baseDir string) (*flock.Lock, error) {
	dir := filepath.Join(baseDir, config.StateDir)
	if err := privateDirs(baseDir, dir, filepath.Join(dir, "log")); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, "lock")
	l, pid, err := flock.Take(path, false, 0)
	if errors.Is(err, flock.ErrHeld) {
		who := ""
		if pid != 0 {
			who = fmt.Sprintf(" (pid %d)", pid)
		}
		return nil, fmt.Errorf("%w%s on base directory %s (lock %s)", ErrRunning, who, baseDir, path)
	}
	if err != nil {
		return nil, fmt.Errorf("daemon: lock %s: %w", path, err)
	}
	return l, nil
}
