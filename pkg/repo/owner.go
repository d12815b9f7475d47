package repo

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// checkOwned refuses to change a directory repository that is not this
// process's own, before the first exclusive lock (every change takes one):
// the repository's directory and those of its layout must be real
// directories (not symbolic links), owned by the effective user and
// writable by nobody else. Otherwise whoever can write there could point
// tmp/, locks/ or revisions/ elsewhere and have a backy run by root delete,
// truncate or chmod what they point at; and what root writes into another
// user's repository, that user cannot read or remove (their next backup
// fails, their revisions read as damaged). The same rule as ssh's
// StrictModes; docs/reliability.md, "Who may write a repository".
func (d *dirBackend) checkOwned() error {
	euid := uint32(os.Geteuid())
	for _, sub := range append([]string{""}, layout...) {
		p := filepath.Join(d.dir, sub)
		st, err := os.Lstat(p)
		if err != nil {
			if os.IsNotExist(err) && sub != "" {
				continue // made when needed, by this process
			}
			return fmt.Errorf("repo: %w", err)
		}
		sys, _ := st.Sys().(*syscall.Stat_t)
		switch {
		case st.Mode()&os.ModeSymlink != 0:
			return fmt.Errorf("%w: %s is a symbolic link: a repository's directories must be its own", ErrNotOwned, p)
		case !st.IsDir():
			return fmt.Errorf("%w: %s is not a directory", ErrNotOwned, p)
		case sys != nil && sys.Uid != euid:
			return fmt.Errorf("%w: %s belongs to uid %d, this process runs as uid %d: run backy as the repository's owner",
				ErrNotOwned, p, sys.Uid, euid)
		case st.Mode().Perm()&0o022 != 0:
			return fmt.Errorf("%w: %s is writable by others (mode %04o): chmod go-w it", ErrNotOwned, p, st.Mode().Perm())
		}
	}
	return nil
}
