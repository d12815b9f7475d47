package upkeep

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/backy/backy/pkg/repo"
)

// AgainstOptions tune VerifyAgainst.
type AgainstOptions struct {
	Options
	Spec string // the revision; default latest
	// Timeout bounds the whole comparison; 0 means none. Running out of
	// time is a failure (ErrTimeout) that changes nothing, never a pass.
	Timeout time.Duration
}

// AgainstResult is what a comparison found.
type AgainstResult struct {
	Revision   string
	Records    int64 // records compared
	Bytes      int64 // image bytes compared
	Mismatches []Mismatch
	Complete   bool // the stream covered the whole image
	Verified   bool // the revision was marked verified
}

// Mismatch is a range where the revision differs from the stream.
type Mismatch struct {
	Offset int64 // where the range starts
	Length int64
	First  int64 // the first differing byte; -1 when not bytes (size, unreadable chunk)
	Detail string
}

func (m Mismatch) String() string {
	if m.Detail != "" {
		return fmt.Sprintf("offset %d: %s", m.Offset, m.Detail)
	}
	return fmt.Sprintf("offset %d: the %d bytes there differ from the stream, the first at %d", m.Offset, m.Length, m.First)
}

// VerifyAgainst compares the extent stream in (a sample or full stream,
// e.g. from backy-extract --sample) with a revision: every record's range
// must hold exactly the record's bytes (zeros for a zero record). A match
// marks the revision verified; a mismatch, including another image size,
// distrusts it with the differences listed and is ErrMismatch. A stream that
// is malformed, truncated or too slow (Timeout) changes nothing. A sample
// that matches does not clear a distrusted revision, because the damage may
// lie where the sample did not look; a full stream does.
//
// On a timeout VerifyAgainst returns at once, possibly while a read from
// in is still blocked; the caller closes in (a command simply exits).
func VerifyAgainst(ctx context.Context, r *repo.Repo, in io.Reader, opt AgainstOptions) (*AgainstResult, error) {
	opt.defaults()
	lock, err := r.TryLock(repo.LockChunks, true)
	if err != nil {
		return nil, err
	}
	defer lock.Unlock()
	chosen, _, err := selectTolerant(r, Selection{Spec: opt.Spec}, opt.Log)
	if err != nil {
		return nil, err
	}
	rev := chosen[0]
	res := &AgainstResult{Revision: rev.ID}
	ix, err := r.IndexOf(rev)
	if errors.Is(err, repo.ErrCorruptIndex) {
		if merr := markRevision(r, rev.ID, []string{"index: " + err.Error()}); merr != nil {
			return nil, merr
		}
		return res, fmt.Errorf("%w: %w", ErrDamaged, err)
	}
	if err != nil {
		return nil, err
	}
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	c := &comparer{r: r, ix: ix, res: res, workers: opt.Workers}
	go func() { done <- c.run(cctx, in) }()
	var timeout <-chan time.Time
	if opt.Timeout > 0 {
		t := time.NewTimer(opt.Timeout)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case err = <-done:
	case <-timeout:
		cancel()
		return nil, fmt.Errorf("%w: %s allowed, %d bytes in %d records compared; the revision is unchanged",
			ErrTimeout, opt.Timeout, c.bytes.Load(), c.records.Load())
	case <-ctx.Done():
		cancel()
		return nil, ctx.Err()
	}
	if err != nil {
		return nil, err
	}
	return res, concludeAgainst(r, rev, res, opt)
}

// concludeAgainst records the outcome of a complete comparison.
func concludeAgainst(r *repo.Repo, rev *repo.Revision, res *AgainstResult, opt AgainstOptions) error {
	if len(res.Mismatches) > 0 {
		list := make([]string, len(res.Mismatches))
		for i, m := range res.Mismatches {
			list[i] = m.String()
			if i < maxReportLines {
				opt.Log.Info(fmt.Sprintf("revision %s: %s", rev.ID, list[i]))
			}
		}
		if n := len(list) - maxReportLines; n > 0 {
			opt.Log.Info(fmt.Sprintf("revision %s: ... and %d more differences", rev.ID, n))
		}
		if err := markRevision(r, rev.ID, list); err != nil {
			return err
		}
		return fmt.Errorf("%w: revision %s differs in %d ranges, the first at offset %d",
			ErrMismatch, rev.ID, len(list), res.Mismatches[0].Offset)
	}
	meta, err := lockMeta(r)
	if err != nil {
		return err
	}
	defer meta.Unlock()
	return update(r, []string{rev.ID}, func(cur *repo.Revision) bool {
		if cur.IsDistrusted() && !res.Complete {
			opt.Log.Info(fmt.Sprintf("revision %s matches the sample but stays distrusted: only a full stream or verify clears it", cur.ID))
			return false
		}
		markVerified(cur, opt.Now())
		res.Verified = true
		return true
	})
}

// maxReportLines bounds the differences printed on stderr.
const maxReportLines = 20

// markRevision distrusts one revision with the damage listed.
func markRevision(r *repo.Repo, id string, damage []string) error {
	meta, err := lockMeta(r)
	if err != nil {
		return err
	}
	defer meta.Unlock()
	return update(r, []string{id}, func(rev *repo.Revision) bool {
		markDamaged(rev, damage)
		return true
	})
}
