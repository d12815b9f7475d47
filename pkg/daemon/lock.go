package daemon

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/backy/backy/pkg/exitcode"

	"golang.org/x/sys/unix"
)

// ErrRunning is returned when another daemon holds the base directory.
var ErrRunning = exitcode.New(exitcode.Busy, "daemon: another backy-schedule is running")

// StateDir is the daemon's own directory below the base directory: its
// lock file and the job logs. The leading dot keeps it apart from job
// names, which start with a letter or digit.
const StateDir = ".backy-schedule"

// lockBase takes the daemon lock of baseDir, creating the state directory.
// Two daemons on one base directory would run every job twice and fight
// over the repositories' locks, so the second one must not start. The lock
// is flock(2): the kernel drops it when the daemon dies, however it dies.
func lockBase(baseDir string) (*os.File, error) {
	dir := filepath.Join(baseDir, StateDir)
	if err := os.MkdirAll(filepath.Join(dir, "log"), 0o755); err != nil {
		return nil, fmt.Errorf("daemon: %w", err)
	}
	path := filepath.Join(dir, "lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("daemon: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			who := ""
			if b, _ := os.ReadFile(path); len(b) > 0 {
				if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
					who = fmt.Sprintf(" (pid %d)", pid)
				}
			}
			return nil, fmt.Errorf("%w%s on base directory %s (lock %s)", ErrRunning, who, baseDir, path)
		}
		return nil, fmt.Errorf("daemon: lock %s: %w", path, err)
	}
	// The pid is for the message above and for people; the lock is the flock.
	f.Truncate(0)
	f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return f, nil
}
