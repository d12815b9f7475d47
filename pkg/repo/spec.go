package repo

import (
	"cmp"
	"fmt"
	"strconv"
	"strings"
)

// Resolve finds the revision a user means (docs/repository.md, "Revision
// specs"), among revs sorted oldest first:
//
//	latest, last   the newest revision
//	N              the N-th newest (0 = newest), N all digits
//	ID             an exact id (before a tag of the same name)
//	TAG            the newest revision carrying that tag
//	PREFIX         the one revision whose id starts with PREFIX
func Resolve(revs []*Revision, spec string) (*Revision, error) {
	spec = cmp.Or(spec, "latest")
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
	// An id before a tag: a revision tagged with another's id must not
	// take its place (an id is what a restore, and NBD's multi-conn,
	// trust to name one revision for good).
	for _, r := range revs {
		if r.ID == spec {
			return r, nil
		}
	}
	for i := len(revs) - 1; i >= 0; i-- {
		if revs[i].HasTag(spec) {
			return revs[i], nil
		}
	}
	var found []*Revision
	var ids []string
	for _, r := range revs {
		if strings.HasPrefix(r.ID, spec) {
			found, ids = append(found, r), append(ids, r.ID)
		}
	}
	switch len(found) {
	case 0:
		return nil, fmt.Errorf("%w %q", ErrNoRevision, spec)
	case 1:
		return found[0], nil
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

// Find loads the revisions and resolves spec (ResolveIntact: while some
// metadata file is damaged, only a spec naming an intact revision by id or
// id prefix is answered).
func (r *Repo) Find(spec string) (*Revision, error) {
	revs, bad, err := r.ScanRevisions()
	if err != nil {
		return nil, err
	}
	return ResolveIntact(revs, bad, spec)
}
