package upkeep

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/backy/backy/pkg/progress"
	"github.com/backy/backy/pkg/repo"
)

// Options are what every upkeep command that reports or takes time needs.
type Options struct {
	Workers int              // default GOMAXPROCS
	Now     func() time.Time // default time.Now
	Log     *slog.Logger     // lines of report (stderr in the commands); default: discard
	// Progress, when set, follows the work: bytes of chunks checked
	// (verify), chunks removed (purge).
	Progress *progress.Counter
}

func (o *Options) defaults() {
	if o.Workers <= 0 {
		o.Workers = runtime.GOMAXPROCS(0)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
}

// VerifyOptions tune Verify.
type VerifyOptions struct {
	Options
	Selection Selection
	// Sample is the percentage of the distinct chunks to check; 0 or 100
	// checks every one. A clean sample does not mark a revision verified
	// (it was not fully checked), but damage found distrusts it.
	Sample float64
}

// VerifyResult is what a verification found.
type VerifyResult struct {
	Revisions   []string // ids of the revisions checked
	Chunks      int      // distinct chunks read and re-hashed
	StoredBytes int64    // compressed bytes read
	Bad         map[repo.Hash]error
	Distrusted  []string // revisions found damaged
	Verified    []string // revisions marked verified
	Duration    time.Duration
}

// Verify re-reads and re-hashes the chunks of the selected revisions, each
// distinct chunk once, on every core. Each bad or missing chunk is reported
// with the revisions and offsets it affects (in every revision, selected or
// not), affected revisions are marked distrusted with the damage listed,
// and, unless sampling, clean ones are marked verified. A damaged index or
// metadata file counts as damage. Any damage is an ErrDamaged error.
func Verify(ctx context.Context, r *repo.Repo, opt VerifyOptions) (*VerifyResult, error) {
	opt.defaults()
	lock, err := r.TryLock(repo.LockChunks, true)
	if err != nil {
		return nil, err
	}
	defer lock.Unlock()
	started := opt.Now()
	chosen, metaBad, err := selectTolerant(r, opt.Selection, opt.Log)
	if err != nil {
		return nil, err
	}
	res := &VerifyResult{Bad: map[repo.Hash]error{}}
	damage := map[string][]string{} // revision id -> what is wrong
	hashes, err := collectHashes(r, chosen, res, damage, opt.Log)
	if err != nil {
		return nil, err
	}
	if opt.Sample > 0 && opt.Sample < 100 {
		hashes = sample(hashes, opt.Sample)
	}
	opt.Progress.SetTotal(int64(len(hashes)) * repo.ChunkSize)
	if err := checkChunks(ctx, r, hashes, opt.Workers, res, opt.Progress); err != nil {
		return nil, err
	}
	if len(res.Bad) > 0 {
		if err := locateDamage(r, res.Bad, damage, opt.Log); err != nil {
			return nil, err
		}
	}
	full := opt.Sample == 0 || opt.Sample >= 100
	if err := markAfterVerify(r, res, damage, full, opt.Now(), opt.Log); err != nil {
		return nil, err
	}
	res.Duration = opt.Now().Sub(started)
	if n := len(res.Bad) + len(damage) + metaBad; n > 0 {
		return res, fmt.Errorf("%w: %d bad chunks, %d damaged revisions, %d damaged metadata files",
			ErrDamaged, len(res.Bad), len(res.Distrusted), metaBad)
	}
	return res, nil
}

// selectTolerant selects revisions while reporting, rather than stopping
// at, damaged metadata files; it returns how many there were. A selection
// that fails while metadata is damaged is reported as damage, because the
// revision asked for may be the damaged one.
func selectTolerant(r *repo.Repo, sel Selection, log *slog.Logger) ([]*repo.Revision, int, error) {
	revs, bad, err := r.ScanRevisions()
	if err != nil {
		return nil, 0, err
	}
	for _, e := range bad {
		log.Info(fmt.Sprintf("damaged: %v", e))
	}
	chosen, err := Select(revs, sel)
	if err != nil && len(bad) > 0 {
		return nil, len(bad), fmt.Errorf("%w: %d damaged metadata files, and %v", ErrDamaged, len(bad), err)
	}
	return chosen, len(bad), err
}

// collectHashes reads the indexes of revs and returns their distinct
// non-zero chunk hashes, sorted. An index that is damaged is reported and
// noted as damage of its revision; other errors stop the verification.
func collectHashes(r *repo.Repo, revs []*repo.Revision, res *VerifyResult, damage map[string][]string, log *slog.Logger) ([]repo.Hash, error) {
	var hs []repo.Hash
	compacted := 0
	for _, rev := range revs {
		ix, err := r.IndexOf(rev)
		if errors.Is(err, repo.ErrNoRevision) {
			continue // forgotten while we looked: nothing to check
		}
		res.Revisions = append(res.Revisions, rev.ID)
		if errors.Is(err, repo.ErrCorruptIndex) {
			log.Info(fmt.Sprintf("damaged: %v", err))
			damage[rev.ID] = append(damage[rev.ID], "index: "+err.Error())
			continue
		}
		if err != nil {
			return nil, err
		}
		for _, h := range ix.Hashes {
			if !h.IsZero() {
				hs = append(hs, h)
			}
		}
		// Sort and deduplicate as we go, so memory follows the number of
		// distinct chunks, not the sum of all revisions.
		if len(hs) > 2*compacted+1024 {
			hs = sortUnique(hs)
			compacted = len(hs)
		}
	}
	return sortUnique(hs), nil
}

func sortUnique(hs []repo.Hash) []repo.Hash {
	slices.SortFunc(hs, func(a, b repo.Hash) int { return bytes.Compare(a[:], b[:]) })
	return slices.Compact(hs)
}

// sample picks ceil(percent% of hs) chunks at random (at least one).
func sample(hs []repo.Hash, percent float64) []repo.Hash {
	k := min(len(hs), int(float64(len(hs))*percent/100+0.999999))
	if k == 0 && len(hs) > 0 {
		k = 1
	}
	for i := range k {
		j := i + rand.IntN(len(hs)-i)
		hs[i], hs[j] = hs[j], hs[i]
	}
	return hs[:k]
}

// checkChunks reads, decompresses and re-hashes every chunk in hs on
// workers goroutines and records the bad ones in res.Bad.
func checkChunks(ctx context.Context, r *repo.Repo, hs []repo.Hash, workers int, res *VerifyResult, pc *progress.Counter) error {
	var (
		next   atomic.Int64
		stored atomic.Int64
		mu     sync.Mutex
		wg     sync.WaitGroup
	)
	for range min(workers, max(len(hs), 1)) {
		wg.Go(func() {
			buf := make([]byte, repo.ChunkSize)
			for ctx.Err() == nil {
				i := next.Add(1) - 1
				if i >= int64(len(hs)) {
					return
				}
				b, err := r.Chunks.Get(hs[i])
				if err == nil {
					stored.Add(int64(len(b)))
					_, err = repo.Decompress(buf, hs[i], b)
				}
				if err != nil {
					mu.Lock()
					res.Bad[hs[i]] = err
					mu.Unlock()
				}
				pc.Add(repo.ChunkSize)
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	res.Chunks, res.StoredBytes = len(hs), stored.Load()
	return nil
}

// maxOffsets bounds how many offsets one report line names per revision.
const maxOffsets = 8

// locateDamage finds every revision and offset using a bad chunk, reports
// one line per bad chunk and notes the damage per revision.
func locateDamage(r *repo.Repo, bad map[repo.Hash]error, damage map[string][]string, log *slog.Logger) error {
	revs, _, err := r.ScanRevisions()
	if err != nil {
		return err
	}
	type use struct {
		id   string
		offs []int64
	}
	uses := map[repo.Hash][]use{}
	for _, rev := range revs {
		ix, err := r.IndexOf(rev)
		if err != nil {
			continue // reported if selected; otherwise not asked about
		}
		for n, h := range ix.Hashes {
			if bad[h] == nil {
				continue
			}
			off := int64(n) * repo.ChunkSize
			u := uses[h]
			if len(u) == 0 || u[len(u)-1].id != rev.ID {
				u = append(u, use{id: rev.ID})
			}
			u[len(u)-1].offs = append(u[len(u)-1].offs, off)
			uses[h] = u
			damage[rev.ID] = append(damage[rev.ID], fmt.Sprintf("offset %d: %v", off, bad[h]))
		}
	}
	keys := make([]repo.Hash, 0, len(bad))
	for h := range bad {
		keys = append(keys, h)
	}
	keys = sortUnique(keys)
	for _, h := range keys {
		var b bytes.Buffer
		for i, u := range uses[h] {
			if i > 0 {
				b.WriteString("; ")
			}
			fmt.Fprintf(&b, "revision %s at %s", u.id, offsetList(u.offs))
		}
		if b.Len() == 0 {
			b.WriteString("no revision uses it any more")
		}
		log.Info(fmt.Sprintf("%v: %s", bad[h], b.String()))
	}
	return nil
}

func offsetList(offs []int64) string {
	var b bytes.Buffer
	if len(offs) == 1 {
		b.WriteString("offset ")
	} else {
		b.WriteString("offsets ")
	}
	for i, o := range offs {
		if i == maxOffsets {
			fmt.Fprintf(&b, " and %d more", len(offs)-i)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%d", o)
	}
	return b.String()
}

// markAfterVerify distrusts damaged revisions and, after a full check,
// marks the clean ones among those checked verified.
func markAfterVerify(r *repo.Repo, res *VerifyResult, damage map[string][]string, full bool, now time.Time, log *slog.Logger) error {
	meta, err := lockMeta(r)
	if err != nil {
		return err
	}
	defer meta.Unlock()
	// An index without metadata is what a store killed between its two
	// renames leaves, so it is no damage; but it is also what a lost
	// metadata file looks like, so say so.
	orphans, err := r.OrphanIndexes()
	if err != nil {
		return err
	}
	for _, id := range orphans {
		log.Info(fmt.Sprintf("note: index %s has no metadata: left by an interrupted store (purge removes it), or its metadata was lost", id))
	}
	ids := append([]string(nil), res.Revisions...)
	for id := range damage {
		if !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	return update(r, ids, func(rev *repo.Revision) bool {
		if d := damage[rev.ID]; len(d) > 0 {
			markDamaged(rev, d)
			res.Distrusted = append(res.Distrusted, rev.ID)
			return true
		}
		if !full {
			return false
		}
		if rev.IsDistrusted() {
			log.Info(fmt.Sprintf("revision %s was distrusted (%s); its chunks and index are intact, so it is verified again: only verify --against can tell whether it matches its source",
				rev.ID, cmp.Or(strings.Join(rev.Damage[:min(1, len(rev.Damage))], ""), "by an operator")))
		}
		markVerified(rev, now)
		res.Verified = append(res.Verified, rev.ID)
		return true
	})
}
