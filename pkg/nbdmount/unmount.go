package nbdmount

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/backy/backy/pkg/flock"
)

// stopTimeout is how long Unmount waits for a running mount to clean up
// after its SIGTERM.
const stopTimeout = 60 * time.Second

// Unmount ends the backy-nbd mount at dir: a running one is sent SIGTERM
// and waited for (it unmounts everything itself); what a killed one left
// behind (mounts, its empty files and directories, the socket) is
// removed. A directory without backy-nbd's lock file is ErrNotMounted.
func Unmount(dir string, stderr io.Writer) error {
	if stderr == nil {
		stderr = io.Discard
	}
	mp, err := mountpoint(dir)
	if err != nil {
		return err
	}
	path := filepath.Join(mp, lockName)
	if _, err := os.Lstat(path); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: %s (no %s in it)", ErrNotMounted, mp, lockName)
	}
	fusermount, err := findHelper("fusermount3")
	if err != nil {
		return err
	}
	lock, pid, err := flock.Take(path, false, 0)
	if errors.Is(err, flock.ErrHeld) && pid > 0 {
		fmt.Fprintf(stderr, "stopping backy-nbd mount (pid %d)\n", pid)
		if err := syscall.Kill(pid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("nbdmount: stop pid %d: %w", pid, err)
		}
		lock, _, err = flock.Take(path, false, stopTimeout)
	}
	if errors.Is(err, flock.ErrHeld) {
		return fmt.Errorf("%w: %s (still running after SIGTERM)", ErrBusy, mp)
	}
	if err != nil {
		return fmt.Errorf("nbdmount: %w", err)
	}
	defer lock.Unlock()
	if err := cleanStale(mp, fusermount, stderr); err != nil {
		return err
	}
	// a mount that stopped cleanly removed it already
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("nbdmount: %w", err)
	}
	return nil
}

// leftover matches the names a mount creates in its mount point.
var leftover = regexp.MustCompile(`^(p[0-9]+|disk)(\.img)?$`)

// cleanStale unmounts every FUSE mount below mp (newest first, lazily:
// their helpers may be dead or hung) and removes the entries a mount
// creates, if they are what it created: empty directories, the links
// to the image directory and its README. The caller holds the lock.
func cleanStale(mp, fusermountPath string, stderr io.Writer) error {
	ms, err := fuseMountsUnder(mp)
	if err != nil {
		return err
	}
	for i := len(ms) - 1; i >= 0; i-- {
		if err := fusermount(fusermountPath, ms[i], true); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "unmounted %s, left by a backy-nbd mount that did not end cleanly\n", ms[i])
	}
	des, err := os.ReadDir(mp)
	if err != nil {
		return fmt.Errorf("nbdmount: %w", err)
	}
	for _, de := range des {
		p := filepath.Join(mp, de.Name())
		fi, err := os.Lstat(p)
		if err != nil {
			continue
		}
		switch {
		case leftover.MatchString(de.Name()) && fi.IsDir():
			os.Remove(p) // only if empty
		case leftover.MatchString(de.Name()) && fi.Mode().Type() == fs.ModeSymlink:
			if t, err := os.Readlink(p); err == nil && strings.HasPrefix(t, imagesName+"/") {
				os.Remove(p)
			}
		case de.Name() == imagesName && fi.IsDir():
			os.Remove(p) // only if empty
		case de.Name() == "."+readmeName+".tmp" && fi.Mode().IsRegular():
			os.Remove(p)
		case de.Name() == readmeName && fi.Mode().IsRegular():
			if b, err := os.ReadFile(p); err == nil && bytes.HasPrefix(b, []byte(readmeHead)) {
				os.Remove(p)
			}
		}
	}
	return nil
}

// fusermount unmounts a FUSE mount with fusermount3 -u (-z: lazily).
func fusermount(prog, mnt string, lazy bool) error {
	args := []string{"-u"}
	if lazy {
		args = append(args, "-z")
	}
	out, err := exec.Command(prog, append(args, "--", mnt)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("nbdmount: fusermount3 %s %s: %w: %s", strings.Join(args, " "), mnt, err, strings.TrimSpace(string(out)))
	}
	return nil
}
