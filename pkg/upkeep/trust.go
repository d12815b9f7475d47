package upkeep

import (
	"errors"
	"fmt"
	"time"

	"github.com/backy/backy/pkg/repo"
)

// metaWait is how long a command waits for the meta lock. Holders keep it
// for a few file writes, so a minute means something is stuck.
const metaWait = time.Minute

// maxDamage bounds the damage list kept in a revision's metadata; the full
// report went to stderr.
const maxDamage = 100

// lockMeta takes the meta lock for a metadata change.
func lockMeta(r *repo.Repo) (*repo.Lock, error) {
	return r.WaitLock(repo.LockMeta, false, metaWait)
}

// lockedRevisions takes the meta lock and lists the revisions under it, so
// that what a change is based on cannot change before it is saved. bad
// lists the revisions whose metadata cannot be read: they are left alone.
func lockedRevisions(r *repo.Repo) (*repo.Lock, []*repo.Revision, []error, error) {
	meta, err := lockMeta(r)
	if err != nil {
		return nil, nil, nil, err
	}
	revs, bad, err := r.ScanRevisions()
	if err != nil {
		meta.Unlock()
		return nil, nil, nil, err
	}
	return meta, revs, bad, nil
}

// lockedRevision takes the meta lock and resolves spec (repo.ResolveIntact);
// revs is the list it was resolved in. The caller unlocks.
func lockedRevision(r *repo.Repo, spec string) (*repo.Lock, []*repo.Revision, *repo.Revision, error) {
	meta, revs, bad, err := lockedRevisions(r)
	if err != nil {
		return nil, nil, nil, err
	}
	rev, err := repo.ResolveIntact(revs, bad, spec)
	if err != nil {
		meta.Unlock()
		return nil, nil, nil, err
	}
	return meta, revs, rev, nil
}

// update re-reads each revision under the meta lock (held by the caller)
// and applies fn to it, saving it when fn reports a change. Revisions
// removed in the meantime are skipped: a forget that ran first wins.
func update(r *repo.Repo, ids []string, fn func(*repo.Revision) bool) error {
	for _, id := range ids {
		rev, err := r.LoadRevision(id)
		if errors.Is(err, repo.ErrNoRevision) {
			continue
		}
		if err != nil {
			return err
		}
		if fn(rev) {
			if err := r.SaveRevision(rev); err != nil {
				return err
			}
		}
	}
	return nil
}

// markVerified records a passed verification.
func markVerified(rev *repo.Revision, now time.Time) {
	t := now.UTC()
	rev.Trust, rev.VerifiedAt, rev.Damage = repo.Verified, &t, nil
}

// markDamaged distrusts a revision and lists what is wrong with it.
func markDamaged(rev *repo.Revision, damage []string) {
	rev.Trust = repo.Distrusted
	rev.Damage = capList(damage, maxDamage)
}

// capList keeps the first n entries and says how many were left out.
func capList(list []string, n int) []string {
	if len(list) <= n {
		return append([]string(nil), list...)
	}
	out := append([]string(nil), list[:n]...)
	return append(out, fmt.Sprintf("... and %d more", len(list)-n))
}

// Distrust marks the selected revisions distrusted: none of them serves as
// the base of a differential backup, and while any revision is distrusted
// backy-store re-verifies every chunk it reuses. It returns the revisions
// it changed (those already distrusted are left as they are).
func Distrust(r *repo.Repo, sel Selection) ([]*repo.Revision, error) {
	meta, revs, bad, err := lockedRevisions(r)
	if err != nil {
		return nil, err
	}
	defer meta.Unlock()
	chosen, err := selectIntact(revs, bad, sel)
	if err != nil {
		return nil, err
	}
	var changed []*repo.Revision
	for _, rev := range chosen {
		if rev.IsDistrusted() {
			continue
		}
		rev.Trust = repo.Distrusted
		if err := r.SaveRevision(rev); err != nil {
			return changed, err
		}
		changed = append(changed, rev)
	}
	return changed, nil
}
