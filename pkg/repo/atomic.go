package repo

import (
	"fmt"

	"github.com/backy/backy/pkg/fsperm"
)

// writeFileAtomic publishes data at path, written in tmpDir first
// (fsperm.Mode.WriteFile): readers see either the old or the new file,
// never a part.
func writeFileAtomic(tmpDir, path string, data []byte, perm fsperm.Mode) error {
	if err := perm.WriteFile(tmpDir, path, data); err != nil {
		return fmt.Errorf("repo: %w", err)
	}
	return nil
}

// syncPath makes a file's data, or a directory's entries (creations,
// renames, removals), durable.
func syncPath(path string) error {
	if err := fsperm.Sync(path); err != nil {
		return fmt.Errorf("repo: %w", err)
	}
	return nil
}
