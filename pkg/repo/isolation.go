package repo

import (
	"errors"
	"fmt"
	"os"
	"strings"
)

// One damaged metadata or index file affects only its revision
// (docs/repository.md, "Damage"): the other revisions restore, a new
// backup is based on the newest intact revision, verify names the damaged
// one, forget removes it, and only purge, which cannot know which chunks it
// needs, refuses until it is forgotten.

// RevisionError is a revision whose metadata or index cannot be read. Its
// text is that of Err, which names the file.
type RevisionError struct {
	ID  string
	Err error
}

func (e *RevisionError) Error() string { return e.Err.Error() }
func (e *RevisionError) Unwrap() error { return e.Err }

// DamagedID returns the revision id of an error from ScanRevisions.
func DamagedID(err error) string {
	var re *RevisionError
	if errors.As(err, &re) {
		return re.ID
	}
	return ""
}

// NewestIntact returns the newest of revs (oldest first) whose index reads
// and verifies, with that index: the base of the next backup. Revisions
// whose index is damaged are skipped; nil when none is intact.
func (r *Repo) NewestIntact(revs []*Revision) (*Revision, *Index, error) {
	for i := len(revs) - 1; i >= 0; i-- {
		ix, err := r.IndexOf(revs[i])
		if errors.Is(err, ErrCorruptIndex) || errors.Is(err, ErrNoRevision) {
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		return revs[i], ix, nil
	}
	return nil, nil, nil
}

// ResolveIntact resolves spec among revs (oldest first) while bad (from
// ScanRevisions) lists revisions whose metadata cannot be read. A spec that
// names an intact revision by id or unique id prefix is answered; "latest",
// N and tags, which might mean a damaged revision, are refused naming it.
func ResolveIntact(revs []*Revision, bad []error, spec string) (*Revision, error) {
	if len(bad) == 0 {
		return Resolve(revs, spec)
	}
	rev, err := Resolve(revs, spec)
	if err != nil || !strings.HasPrefix(rev.ID, spec) || spec == "" {
		return nil, fmt.Errorf("%w (name an intact revision by its id)", bad[0])
	}
	for _, e := range bad {
		if id := DamagedID(e); id != rev.ID && strings.HasPrefix(id, spec) {
			return nil, fmt.Errorf("%w %q matches %s and %s, whose metadata is damaged", ErrAmbiguous, spec, rev.ID, id)
		}
	}
	return rev, nil
}

// FindDamaged returns the id of the damaged revision (one in bad) that spec
// names by id or unique id prefix, or "" when it names none.
func FindDamaged(revs []*Revision, bad []error, spec string) (string, error) {
	if spec == "" {
		return "", nil
	}
	var found []string
	for _, e := range bad {
		if id := DamagedID(e); id != "" && strings.HasPrefix(id, spec) {
			if id == spec {
				return id, nil
			}
			found = append(found, id)
		}
	}
	if len(found) == 0 {
		return "", nil
	}
	for _, rev := range revs {
		if strings.HasPrefix(rev.ID, spec) {
			found = append(found, rev.ID)
		}
	}
	if len(found) > 1 {
		return "", fmt.Errorf("%w %q matches %s", ErrAmbiguous, spec, strings.Join(found, ", "))
	}
	return found[0], nil
}

// indexSizer is a backend that can tell an index's size without reading it.
type indexSizer interface {
	indexSize(id string) (int64, error)
}

// QuickCheckIndex checks what can be checked of a revision's index without
// reading it (the directory backend: that it exists and has the length the
// revision's size gives); the full check is Index. nil when the backend
// cannot tell.
func (r *Repo) QuickCheckIndex(rev *Revision) error {
	s, ok := r.b.(indexSizer)
	if !ok {
		return nil
	}
	n, err := s.indexSize(rev.ID)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%w: %s is missing", ErrCorruptIndex, r.objName(rev.ID, ".idx"))
	}
	if err != nil {
		return err
	}
	if want := int64(indexHeaderLen+4) + 32*ChunkCount(rev.Size); n != want {
		return fmt.Errorf("%w: %s has %d bytes, revision size %d needs %d", ErrCorruptIndex, r.objName(rev.ID, ".idx"), n, rev.Size, want)
	}
	return nil
}

func (d *dirBackend) indexSize(id string) (int64, error) {
	st, err := os.Stat(d.revPath(id, ".idx"))
	if err != nil {
		return 0, err
	}
	return st.Size(), nil
}
