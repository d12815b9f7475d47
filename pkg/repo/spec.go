package repo

import (
	"fmt"
	"strconv"
	"strings"
)

// Resolve finds the revision a user means (docs/repository.md, "Revision
// specs"), among revs sorted oldest first:
//
//	latest, last   the newest revision
//	N              the N-th newest (0 = newest), N all digits
//	TAG            the newest revision carrying that tag
//	ID             an exact id
//	PREFIX         the one revision whose id starts with PREFIX
func Resolve(revs []*Revision, spec string) (*Revision, error) {
	if spec == "" {
		spec = "latest"
	}
	if len(revs) == 0 {
		return nil, fmt.Errorf("%w %q: the repository has no revisions", ErrNoRevision, spec)
	}
	if spec == "latest" || spec == "last" {
		return revs[len(revs)-1], nil
	}
	if isDigits(spec) {
		n, err := strconv.Atoi(spec)
		if err != nil || n >= len(revs) {
			return nil, fmt.Errorf("%w %q: there are %d revisions", ErrNoRevision, spec, len(revs))
		}
		return revs[len(revs)-1-n], nil
	}
	for i := len(revs) - 1; i >= 0; i-- {
		if revs[i].HasTag(spec) {
			return revs[i], nil
		}
	}
	var found []*Revision
	for _, r := range revs {
		if r.ID == spec {
			return r, nil
		}
		if strings.HasPrefix(r.ID, spec) {
			found = append(found, r)
		}
	}
	switch len(found) {
	case 0:
		return nil, fmt.Errorf("%w %q", ErrNoRevision, spec)
	case 1:
		return found[0], nil
	}
	ids := make([]string, len(found))
	for i, r := range found {
		ids[i] = r.ID
	}
	return nil, fmt.Errorf("%w %q matches %s", ErrAmbiguous, spec, strings.Join(ids, ", "))
}

func isDigits(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return s != ""
}

// Find loads the revisions and resolves spec. When some metadata file is
// damaged it still answers a spec that names a readable revision by id or
// id prefix (so an operator can restore any intact revision), but refuses
// "latest", N and tags, which might mean the damaged revision.
func (r *Repo) Find(spec string) (*Revision, error) {
	revs, bad, err := r.ScanRevisions()
	if err != nil {
		return nil, err
	}
	if len(bad) == 0 {
		return Resolve(revs, spec)
	}
	rev, rerr := Resolve(revs, spec)
	if rerr != nil || !strings.HasPrefix(rev.ID, spec) || spec == "" {
		return nil, fmt.Errorf("%w (name an intact revision by its id to restore it)", bad[0])
	}
	ids, err := r.b.RevisionIDs()
	if err != nil {
		return nil, err
	}
	for _, id := range ids {
		if id != rev.ID && strings.HasPrefix(id, spec) {
			return nil, fmt.Errorf("%w %q matches %s and %s, whose metadata is damaged", ErrAmbiguous, spec, rev.ID, id)
		}
	}
	return rev, nil
}
