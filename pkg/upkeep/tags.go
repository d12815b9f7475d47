package upkeep

import (
	"fmt"
	"slices"

	"github.com/backy/backy/pkg/repo"
	"github.com/backy/backy/pkg/schedule"
)

// Tag actions.
const (
	TagAdd    = "add"
	TagRemove = "remove"
	TagSet    = "set"
)

// TagsResult says what Tags did.
type TagsResult struct {
	Revision *repo.Revision // with its new tags
	Removed  bool           // it lost its last tag and was removed
}

// Tags adds, removes or sets the tags of the revision spec names. A
// revision that loses its last tag is removed, as expiry would, except the
// newest revision, which is never removed this way.
func Tags(r *repo.Repo, spec, action string, tags []string) (*TagsResult, error) {
	if action != TagRemove {
		for _, t := range tags {
			if err := schedule.CheckTag(t); err != nil {
				return nil, err
			}
		}
	}
	meta, revs, rev, err := lockedRevision(r, spec)
	if err != nil {
		return nil, err
	}
	defer meta.Unlock()
	had := len(rev.Tags) > 0
	switch action {
	case TagSet:
		rev.Tags = rev.Tags[:0]
		fallthrough
	case TagAdd:
		for _, t := range tags {
			if !slices.Contains(rev.Tags, t) {
				rev.Tags = append(rev.Tags, t)
			}
		}
	case TagRemove:
		rev.Tags = slices.DeleteFunc(rev.Tags, func(t string) bool { return slices.Contains(tags, t) })
	default:
		return nil, fmt.Errorf("%w: tag action %q (want add, remove or set)", ErrSelection, action)
	}
	res := &TagsResult{Revision: rev}
	if had && len(rev.Tags) == 0 && rev != revs[len(revs)-1] {
		res.Removed = true
		return res, r.RemoveRevision(rev.ID)
	}
	return res, r.SaveRevision(rev)
}

// Forget removes the revision spec names; its chunks go at the next purge.
// The newest revision is the base of the next differential backup, so
// forgetting it needs force. A revision whose metadata is damaged is
// removed too when spec names it by id or id prefix; the Revision returned
// then holds only its id.
func Forget(r *repo.Repo, spec string, force bool) (*repo.Revision, error) {
	meta, revs, bad, err := lockedRevisions(r)
	if err != nil {
		return nil, err
	}
	defer meta.Unlock()
	// A revision whose metadata cannot be read is named by its id (or a
	// prefix); it is never the base of a backup, so no force is needed.
	id, err := repo.FindDamaged(revs, bad, spec)
	if err != nil {
		return nil, err
	}
	if id != "" {
		return &repo.Revision{ID: id}, r.RemoveRevision(id)
	}
	rev, err := repo.ResolveIntact(revs, bad, spec)
	if err != nil {
		return nil, err
	}
	if rev == revs[len(revs)-1] && !force {
		return nil, fmt.Errorf("%w %s without --force", ErrNewest, rev.ID)
	}
	return rev, r.RemoveRevision(rev.ID)
}
