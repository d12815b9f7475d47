package faults

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// opLog counts the exit codes of each kind of command.
type opLog struct {
	mu sync.Mutex
	n  map[string]map[int]int
}

func (l *opLog) add(op string, code int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.n[op] == nil {
		l.n[op] = map[int]int{}
	}
	l.n[op][code]++
}

func (l *opLog) String() string {
	var ops []string
	for op, codes := range l.n {
		var cs []string
		for c, n := range codes {
			cs = append(cs, fmt.Sprintf("exit %d: %d", c, n))
		}
		sort.Strings(cs)
		ops = append(ops, op+" ("+strings.Join(cs, ", ")+")")
	}
	sort.Strings(ops)
	return strings.Join(ops, "; ")
}

// TestConcurrency runs stores, restores, status, and (once they exist)
// verify, forget and purge on one repository at the same time. Every
// command must either do its work or fail with exit 5 (busy) — restore may
// also find that a revision it listed was forgotten meanwhile (exit 6) —
// and every restore that exits 0 must give the exact bytes of its image
// version. Afterwards every revision restores and verify passes.
func TestConcurrency(t *testing.T) {
	t.Parallel()
	dur := time.Duration(scale(20, 120)) * time.Second
	tmp := t.TempDir()
	dir := filepath.Join(tmp, "repo")
	var sums sync.Map // tag -> SHA-256
	log := &opLog{n: map[string]map[int]int{}}

	const storers = 2
	ims := make([]*image, storers)
	for k := range ims {
		ims[k] = newImage(t, filepath.Join(tmp, fmt.Sprintf("vm%d.img", k)), 16<<20+int64(k)*4099, uint64(20+k))
		tag := fmt.Sprintf("w%dv0", k)
		sums.Store(tag, fileSum(t, ims[k].path))
		mustBackup(t, dir, ims[k].path, tag, tag)
	}
	deadline := time.Now().Add(dur)
	var wg sync.WaitGroup
	worker := func(name string, fn func(rng *rand.Rand)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(len(name)), uint64(name[len(name)-1])))
			for time.Now().Before(deadline) {
				fn(rng)
			}
		}()
	}
	for k := range storers {
		im := ims[k]
		v := 0
		worker(fmt.Sprintf("store%d", k), func(rng *rand.Rand) {
			im.mutate(t, 1+rng.IntN(3), false)
			v++
			tag := fmt.Sprintf("w%dv%d", k, v)
			sums.Store(tag, fileSum(t, im.path))
			r := backup(t, dir, im.path, tag, tag)
			log.add("store", r.code)
			if r.code != 0 && r.code != exitBusy {
				t.Errorf("store: %v", r)
			}
		})
	}
	for k := range 2 {
		worker(fmt.Sprintf("restore%d", k), func(rng *rand.Rand) {
			revs, r := statusOf(t, dir)
			if r.code != 0 {
				t.Errorf("status: %v", r)
				return
			}
			rev := revs[rng.IntN(len(revs))]
			sum, r := restoreSum(t, dir, rev.ID)
			log.add("restore", r.code)
			want, _ := sums.Load(firstTag(rev, "w"))
			switch {
			case r.code == 0 && sum != want:
				t.Errorf("restore of %s (%v) exits 0 with wrong bytes", rev.ID, rev.Tags)
			case r.code == 0, r.code == exitBusy:
			case r.code == exitNotFound && upkeep["forget"]:
			default:
				t.Errorf("restore of %s on a healthy repository: %v", rev.ID, r)
			}
		})
	}
	worker("status", func(rng *rand.Rand) {
		_, r := statusOf(t, dir)
		log.add("status", r.code)
		if r.code != 0 {
			t.Errorf("status: %v", r)
		}
		time.Sleep(50 * time.Millisecond)
	})
	if upkeep["verify"] {
		worker("verify", func(rng *rand.Rand) {
			r := backy(t, nil, "backy-store", "-b", dir, "verify")
			log.add("verify", r.code)
			if r.code != 0 && r.code != exitBusy {
				t.Errorf("verify on a healthy repository: %v", r)
			}
		})
	}
	if upkeep["purge"] {
		worker("purge", func(rng *rand.Rand) {
			if revs, r := statusOf(t, dir); r.code == 0 && len(revs) > 6 && upkeep["forget"] {
				r := backy(t, nil, "backy-store", "-b", dir, "forget", revs[0].ID)
				log.add("forget", r.code)
				if r.code != 0 && r.code != exitBusy {
					t.Errorf("forget: %v", r)
				}
			}
			r := backy(t, nil, "backy-store", "-b", dir, "purge", "--wait", "5s")
			log.add("purge", r.code)
			if r.code != 0 && r.code != exitBusy {
				t.Errorf("purge: %v", r)
			}
			time.Sleep(time.Second)
		})
	}
	wg.Wait()
	t.Logf("%s of concurrent commands: %s", dur, log)
	if t.Failed() {
		return
	}
	revs := mustStatus(t, dir)
	for _, rev := range revs {
		want, _ := sums.Load(firstTag(rev, "w"))
		if sum, r := restoreSum(t, dir, rev.ID); r.code != 0 || sum != want {
			t.Errorf("afterwards, revision %s (%v) does not restore bit-exactly: %v", rev.ID, rev.Tags, r)
		}
	}
	revisionFiles(t, dir)
	checkChunkFiles(t, dir, map[string]bool{})
	if upkeep["verify"] {
		if r := backy(t, nil, "backy-store", "-b", dir, "verify"); r.code != 0 {
			t.Errorf("verify afterwards: %v", r)
		}
	}
	if log.n["store"][0] < 2 || log.n["restore"][0] < 2 {
		t.Errorf("too little got done to show anything: %s", log)
	}
}
