package repo

import (
	"errors"
	"fmt"
	"os"
)

// Copying revisions between repositories (pkg/upkeep Copy): the metadata
// travels as the source holds it, byte for byte and seal included, so
// members this backy does not know survive the copy; only an unsealed file
// of a format 1 source is sealed on the way (a format 2 target holds
// nothing else).

// RevisionFile reads revision id's metadata: decoded, and as sealed bytes
// that CommitCopy can publish in another repository. A revision that does
// not exist (any more) is ErrNoRevision.
func (r *Repo) RevisionFile(id string) (*Revision, []byte, error) {
	b, err := r.b.ReadMeta(id)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil, fmt.Errorf("%w %q", ErrNoRevision, id)
	}
	if err != nil {
		return nil, nil, err
	}
	rev, err := r.decodeMeta(id, b)
	if err != nil {
		return nil, nil, err
	}
	if _, sealed, _ := unseal(b); !sealed {
		if b, err = rev.marshal(); err != nil {
			return nil, nil, err
		}
	}
	return rev, b, nil
}

// CommitCopy publishes a revision copied from another repository, as
// Commit does: the index, then the metadata file meta (from RevisionFile)
// unchanged. The chunks the index names must already be durable here.
// The caller holds the meta lock.
func (r *Repo) CommitCopy(id string, meta []byte, ix *Index) error {
	rev, err := decodeRevision(meta, r.objName(id, ".rev"), id, false)
	if err != nil {
		return err
	}
	check := func(sum string) error {
		if rev.IndexSum != "" && sum != rev.IndexSum {
			return fmt.Errorf("%w: revision %s: the index to copy is not the one its metadata records", ErrCorruptIndex, id)
		}
		return nil
	}
	return r.commit(id, ix, check, func(string) error { return r.b.WriteMeta(id, meta) })
}

// SameRepository reports whether a and b are one repository: the same
// directory however it is named, or the same job of the same pool of one
// cluster. A copy onto itself is refused with it.
func SameRepository(a, b *Repo) bool {
	if a.Dir != "" || b.Dir != "" {
		sa, erra := os.Stat(a.Dir)
		sb, errb := os.Stat(b.Dir)
		return a.Dir != "" && b.Dir != "" && erra == nil && errb == nil && os.SameFile(sa, sb)
	}
	fa, oka := a.b.(clusterNamer)
	fb, okb := b.b.(clusterNamer)
	return a.Location() == b.Location() && oka && okb && fa.cluster() == fb.cluster()
}

// clusterNamer is a backend that knows the id of the cluster it lives in
// (RADOS: the fsid).
type clusterNamer interface{ cluster() string }
