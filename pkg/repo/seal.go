package repo

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// seal turns a repository of format 1 into one of format 2 before its
// first metadata change by this process (docs/repository.md, "Versions"):
// every readable unsealed metadata file is rewritten sealed, then the
// format marker says 2, and from then on an unsealed file is damage. A
// crash in between leaves a format 1 repository whose files are sealed or
// not, which is still valid, and the next change finishes the job. Only
// directories can be of format 1 (RADOS repositories began at 2). The
// caller holds the meta lock, as for every metadata change.
func (r *Repo) seal() error {
	d, ok := r.b.(*dirBackend)
	if !ok {
		return nil
	}
	if err := d.restrict(); err != nil {
		return err
	}
	if r.format != legacyFormat {
		return nil
	}
	path := filepath.Join(d.dir, configFile)
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("repo: %w", err)
	}
	format, err := checkConfig(b, path)
	if err != nil {
		return err
	}
	if format == legacyFormat {
		ids, err := r.b.RevisionIDs()
		if err != nil {
			return err
		}
		for _, id := range ids {
			rev, err := r.readRevision(id)
			if errors.Is(err, os.ErrNotExist) || errors.Is(err, ErrCorruptMeta) || errors.Is(err, ErrFormat) {
				continue // gone, or damaged, which it stays
			}
			if err != nil {
				return err
			}
			if err := r.saveRevision(rev); err != nil {
				return err
			}
		}
		if err := d.perm.WriteFile(d.tmp(), path, marshalConfig(FormatVersion)); err != nil {
			return err
		}
	}
	r.format = FormatVersion
	return nil
}
