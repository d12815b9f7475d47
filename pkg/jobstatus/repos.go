package jobstatus

import (
	"errors"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/backy/backy/pkg/repo"
	"github.com/backy/backy/pkg/schedule"
)

// RepoInfo is what the daemon and backy-check need to know about a job's
// repository.
type RepoInfo struct {
	// Last is the newest revision time per tag, counting only revisions
	// that are not distrusted: a revision whose verification failed must not
	// count for its slot, or the job would not be retried.
	Last          map[string]time.Time
	Revisions     int
	Distrusted    int
	Newest        time.Time // newest revision of any trust
	NewestTrusted time.Time // newest trusted or verified revision
	// Damage is what the newest verification that found damage reported,
	// with the revision id, DamagedMeta counts metadata files that cannot
	// be read, and DamagedIndex the revisions whose index is missing or
	// has the wrong length (repo.QuickCheckIndex): those count for no slot
	// and are not the newest trusted revision, since they do not restore.
	Damage       []string
	DamagedMeta  int
	DamagedIndex int
	// Consistency, ConsistencyReason and FrozenSeconds are those of the
	// newest revision (see repo.Revision); CrashRuns counts the newest
	// revisions in a row that are only crash-consistent.
	Consistency       string
	ConsistencyReason string
	FrozenSeconds     float64
	CrashRuns         int
	// Err says why the repository could not be read at all; a repository
	// that does not exist yet is not an error, just empty.
	Err string
}

// Location is a job's repository as ScanRepo reads it: a directory or
// rados:POOL/JOB, and how to reach the Ceph cluster of a RADOS one.
type Location struct {
	Dir  string
	Ceph repo.Ceph
}

// ScanRepo summarises the repository at l.
func ScanRepo(l Location) RepoInfo {
	dir := l.Dir
	info := RepoInfo{Last: map[string]time.Time{}}
	r, err := repo.Open(dir, repo.WithCeph(l.Ceph))
	if err != nil {
		if errors.Is(err, repo.ErrNotRepository) && (repo.IsRados(dir) || dirMissingOrEmpty(dir)) {
			return info // a job that never ran: no job in the pool yet
		}
		info.Err = err.Error()
		return info
	}
	defer r.Close()
	revs, bad, err := r.ScanRevisions()
	if err != nil {
		info.Err = err.Error()
		return info
	}
	info.DamagedMeta = len(bad)
	var damagedAt time.Time
	var good []schedule.RevisionInfo
	for _, rev := range revs {
		info.Revisions++
		if rev.Time.After(info.Newest) {
			info.Newest = rev.Time
		}
		if len(rev.Damage) > 0 && !rev.Time.Before(damagedAt) {
			damagedAt = rev.Time
			info.Damage = append([]string{"revision " + rev.ID}, rev.Damage...)
		}
		if rev.IsDistrusted() {
			info.Distrusted++
			continue
		}
		if errors.Is(r.QuickCheckIndex(rev), repo.ErrCorruptIndex) {
			info.DamagedIndex++
			continue
		}
		if rev.Time.After(info.NewestTrusted) {
			info.NewestTrusted = rev.Time
		}
		good = append(good, schedule.RevisionInfo{ID: rev.ID, Time: rev.Time, Tags: rev.Tags})
	}
	info.Last = schedule.LastByTag(good)
	consistency(&info, revs)
	return info
}

// consistency fills in the consistency figures from the revisions, newest
// first. Only revisions that say "crash" count towards CrashRuns: one of
// unknown consistency (written before it was recorded, or from a file)
// ends the run of them as a consistent one does.
func consistency(info *RepoInfo, revs []*repo.Revision) {
	byTime := slices.Clone(revs)
	slices.SortStableFunc(byTime, func(a, b *repo.Revision) int { return b.Time.Compare(a.Time) })
	if len(byTime) == 0 {
		return
	}
	n := byTime[0]
	info.Consistency, info.ConsistencyReason, info.FrozenSeconds = n.Consistency, n.ConsistencyReason, n.FrozenSeconds
	for _, r := range byTime {
		if r.Consistency != "crash" {
			break
		}
		info.CrashRuns++
	}
}

// dirMissingOrEmpty tells a job that never ran (no directory, or one
// backy-store has not filled yet) from a directory that holds something
// other than a repository.
func dirMissingOrEmpty(dir string) bool {
	entries, err := os.ReadDir(dir)
	return errors.Is(err, os.ErrNotExist) || err == nil && len(entries) == 0
}

// ScanRepos scans many repositories with a few goroutines: the work is
// mostly waiting for small reads, and ten thousand of them one after the
// other take seconds.
func ScanRepos(dirs []Location, workers int) []RepoInfo {
	out := make([]RepoInfo, len(dirs))
	next := make(chan int)
	var wg sync.WaitGroup
	for range max(1, workers) {
		wg.Go(func() {
			for i := range next {
				out[i] = ScanRepo(dirs[i])
			}
		})
	}
	for i := range dirs {
		next <- i
	}
	close(next)
	wg.Wait()
	return out
}
