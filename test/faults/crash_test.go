package faults

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/backy/backy/internal/clitest"
	"github.com/backy/backy/internal/raceflag"
)

// crashRig keeps what a crash test knows: the image, the checksum of every
// version of it (each revision is tagged with its version), and which
// revisions and chunk files were already checked.
type crashRig struct {
	t        *testing.T
	tmp, dir string
	im       *image
	rng      *rand.Rand
	ver      int
	sums     map[string]string // version tag -> SHA-256 of that image version
	copies   map[string]string // version tag -> a copy of it (diff bases)
	restored map[string]bool   // revision ids restored bit-exactly
	chunks   map[string]bool   // chunk files found intact
	window   time.Duration     // how long an uninterrupted store takes
}

func newCrashRig(t *testing.T, seed uint64, size int64) *crashRig {
	tmp := t.TempDir()
	c := &crashRig{t: t, tmp: tmp, dir: filepath.Join(tmp, "repo"),
		rng:  rand.New(rand.NewPCG(seed, 99)),
		sums: map[string]string{}, copies: map[string]string{},
		restored: map[string]bool{}, chunks: map[string]bool{}}
	c.im = newImage(t, filepath.Join(tmp, "vm.img"), size, seed)
	return c
}

// version records the image as it is now under a new tag.
func (c *crashRig) version() string {
	c.ver++
	tag := fmt.Sprintf("v%d", c.ver)
	c.sums[tag] = fileSum(c.t, c.im.path)
	cp := filepath.Join(c.tmp, tag+".img")
	copyFile(c.t, c.im.path, cp)
	c.copies[tag] = cp
	return tag
}

// dropCopies keeps only the copies of the given versions.
func (c *crashRig) dropCopies(keep ...string) {
	for tag, p := range c.copies {
		if !strings.Contains(" "+strings.Join(keep, " ")+" ", " "+tag+" ") {
			os.Remove(p)
			delete(c.copies, tag)
		}
	}
}

// newestTag is the version of the newest revision.
func (c *crashRig) newestTag() string {
	revs := mustStatus(c.t, c.dir)
	if len(revs) == 0 {
		return ""
	}
	return firstTag(revs[len(revs)-1], "v")
}

// startStore starts storing the current image as version tag: through
// backy-extract (a full stream) or, with diff, as a differential stream
// against the newest revision. It returns the store process and a wait
// function giving the store's result.
func (c *crashRig) startStore(tag string, diff bool) (*exec.Cmd, func() result) {
	t := c.t
	if !diff {
		p := startBackup(t, c.dir, c.im.path, tag, tag)
		return p.store, func() result {
			sc, _ := p.wait(t)
			return result{sc, p.out.String(), p.errb.String()}
		}
	}
	base := c.newestTag()
	stream := diffStream(t, c.copies[base], c.im.path, base, tag)
	cmd := command("backy-store", "-b", c.dir, "--tags", tag)
	var out, errb bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = bytes.NewReader(stream), &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, func() result {
		return result{clitest.ExitCode(t, cmd.Wait()), out.String(), errb.String()}
	}
}

// completeStore stores the current image as tag and checks the result.
func (c *crashRig) completeStore(tag string, diff bool) string {
	t := c.t
	t.Helper()
	start := time.Now()
	_, wait := c.startStore(tag, diff)
	r := wait()
	if r.code != 0 {
		t.Fatalf("the backup after a crash failed (diff=%v): %v", diff, r)
	}
	c.window = time.Since(start)
	id := strings.TrimSpace(r.stdout)
	c.checkRestore(id, tag, false)
	return id
}

func (c *crashRig) checkRestore(id, tag string, toFile bool) {
	t := c.t
	t.Helper()
	var sum string
	var r result
	if toFile {
		target := filepath.Join(c.tmp, "restored.img")
		sum, r = restoreFile(t, c.dir, id, target)
		os.Remove(target)
	} else {
		sum, r = restoreSum(t, c.dir, id)
	}
	if r.code != 0 {
		t.Fatalf("revision %s (%s) does not restore: %v", id, tag, r)
	}
	if sum != c.sums[tag] {
		t.Fatalf("revision %s restores to bytes that differ from image version %s", id, tag)
	}
	c.restored[id] = true
}

// check is what must hold after any crash: the repository reads, every
// revision is whole and restores bit-exactly to the image version it was
// made from, every chunk file is intact.
func (c *crashRig) check() (orphans, tmp int) {
	t := c.t
	t.Helper()
	revs, r := statusOf(t, c.dir)
	if r.code != 0 {
		t.Fatalf("after a crash the repository does not read: %v", r)
	}
	orphans = len(revisionFiles(t, c.dir))
	for _, rev := range revs {
		tag := firstTag(rev, "v")
		if _, ok := c.sums[tag]; !ok {
			t.Fatalf("revision %s has no version tag: %v", rev.ID, rev.Tags)
		}
		if !c.restored[rev.ID] {
			c.checkRestore(rev.ID, tag, false)
		}
	}
	// Under the race detector this test binary's own checking (zstd
	// decoding of every chunk file) is several times slower: the chunk
	// files are then checked once at the end instead of after every kill.
	if !raceflag.Enabled {
		checkChunkFiles(t, c.dir, c.chunks)
	}
	return orphans, len(tmpLeft(c.dir))
}

// TestCrashStore kills backy-store with SIGKILL at random moments of a
// backup (full streams through backy-extract, and differential streams),
// then checks the repository and makes the next backup, which must succeed.
func TestCrashStore(t *testing.T) {
	t.Parallel()
	want := kills(30, 200)
	c := newCrashRig(t, 1, 24<<20+12345)
	tag := c.version()
	c.completeStore(tag, false)

	kills, hits, committed, extractKills, lateKills := 0, map[string]int{}, 0, 0, 0
	var orphans, tmps int
	for attempt := 1; kills < want; attempt++ {
		if attempt > 4*want {
			t.Fatalf("only %d of %d kills hit a running backy-store", kills, want)
		}
		c.im.mutate(t, 1+c.rng.IntN(4), true)
		prev := c.newestTag()
		tag := c.version()
		diff := c.rng.IntN(2) == 0
		// Half the kills anywhere in the run, half late, where the commit is.
		w := int64(c.window) * 12 / 10
		delay := time.Duration(c.rng.Int64N(w))
		if c.rng.IntN(2) == 0 {
			delay = time.Duration(w/2 + c.rng.Int64N(w/2))
		}
		if !diff && attempt%7 == 0 {
			// Kill the producer instead: the store sees a truncated stream
			// and must not make a revision of it. (A producer killed after it
			// wrote its END record sent a whole stream: that revision must
			// restore to the image, which check() below proves.)
			before := len(mustStatus(t, c.dir))
			p := startBackup(t, c.dir, c.im.path, tag, tag)
			time.Sleep(delay / 2)
			p.extract.Process.Signal(syscall.SIGKILL)
			sc, ec := p.wait(t)
			if ec == killed {
				extractKills++
				switch {
				case sc == exitBadInput:
					if n := len(mustStatus(t, c.dir)); n != before {
						t.Fatalf("a failed store changed the number of revisions from %d to %d", before, n)
					}
				case sc == 0:
					lateKills++
				default:
					t.Fatalf("backy-store on a stream whose producer was killed: exit %d, want %d: %s", sc, exitBadInput, p.errb.String())
				}
			}
		} else {
			cmd, wait := c.startStore(tag, diff)
			time.Sleep(delay)
			cmd.Process.Signal(syscall.SIGKILL)
			r := wait()
			switch r.code {
			case killed:
				kills++
				if c.newestTag() == tag {
					committed++ // killed after the revision was published
				}
				if diff {
					hits["diff"]++
				} else {
					hits["full"]++
				}
			case 0:
			default:
				t.Fatalf("backy-store, not killed, failed: %v", r)
			}
		}
		o, tm := c.check()
		orphans, tmps = o, tm
		// The next backup succeeds, full or differential.
		c.completeStore(tag, c.rng.IntN(2) == 0)
		c.dropCopies(tag, prev)
	}
	revs := mustStatus(t, c.dir)
	for i, rev := range revs {
		c.checkRestore(rev.ID, firstTag(rev, "v"), i%2 == 0)
	}
	checkChunkFiles(t, c.dir, c.chunks)
	t.Logf("%d SIGKILLs hit backy-store (%d full, %d differential; %d after the revision was published), %d hit backy-extract (%d after its END record); %d revisions, all restored bit-exactly",
		kills, hits["full"], hits["diff"], committed, extractKills, lateKills, len(revs))
	t.Logf("left behind by the kills: %d index files without metadata, %d entries in tmp/", orphans, tmps)
	upkeepAfterCrashes(t, c)
}

// upkeepAfterCrashes runs verify and purge over a repository that saw
// crashes, once those commands exist: verify must pass, purge must succeed
// and leave every revision restorable.
func upkeepAfterCrashes(t *testing.T, c *crashRig) {
	if upkeep["verify"] {
		if r := backy(t, nil, "backy-store", "-b", c.dir, "verify"); r.code != 0 {
			t.Errorf("verify after crashes: %v", r)
		}
	}
	if upkeep["purge"] {
		if r := backy(t, nil, "backy-store", "-b", c.dir, "purge"); r.code != 0 {
			t.Errorf("purge after crashes: %v", r)
		}
		if left := tmpLeft(c.dir); len(left) > 0 {
			t.Errorf("after purge, tmp/ still holds %d entries left by killed processes", len(left))
		}
		if o := revisionFiles(t, c.dir); len(o) > 0 {
			t.Errorf("after purge, %d index files without metadata are left", len(o))
		}
		for _, rev := range mustStatus(t, c.dir) {
			c.checkRestore(rev.ID, firstTag(rev, "v"), false)
		}
	}
}

// TestCrashPurge kills backy-store purge with SIGKILL at random moments
// while it removes the chunks of forgotten revisions; afterwards every
// remaining revision restores bit-exactly, verify passes, and the next purge
// and the next backup succeed.
func TestCrashPurge(t *testing.T) {
	t.Parallel()
	if !upkeep["purge"] || !upkeep["forget"] {
		t.Skip("backy-store has no purge or forget command yet")
	}
	want := kills(30, 150)
	c := newCrashRig(t, 11, 12<<20+8191)
	for range 3 {
		c.im.mutate(t, 4, false)
		c.completeStore(c.version(), false)
	}
	window := time.Second
	kills, misses := 0, 0
	for attempt := 1; kills < want; attempt++ {
		if attempt > 4*want {
			t.Fatalf("only %d of %d kills hit a running purge", kills, want)
		}
		// New garbage: a much changed image stored, the oldest revision forgotten.
		c.im.mutate(t, 6, true)
		tag := c.version()
		c.completeStore(tag, false)
		c.dropCopies(tag)
		revs := mustStatus(t, c.dir)
		if r := backy(t, nil, "backy-store", "-b", c.dir, "forget", revs[0].ID); r.code != 0 {
			t.Fatalf("forget %s: %v", revs[0].ID, r)
		}
		delete(c.restored, revs[0].ID)
		cmd := command("backy-store", "-b", c.dir, "purge")
		var errb bytes.Buffer
		cmd.Stderr = &errb
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(c.rng.Int64N(int64(window) * 12 / 10)))
		cmd.Process.Signal(syscall.SIGKILL)
		switch code := clitest.ExitCode(t, cmd.Wait()); code {
		case killed:
			kills++
		case 0:
			misses++
		default:
			t.Fatalf("purge, not killed, failed: exit %d: %s", code, errb.String())
		}
		for id := range c.restored { // every remaining revision, again
			delete(c.restored, id)
		}
		c.check()
		if upkeep["verify"] {
			if r := backy(t, nil, "backy-store", "-b", c.dir, "verify"); r.code != 0 {
				t.Fatalf("verify after a killed purge: %v", r)
			}
		}
		start := time.Now()
		if r := backy(t, nil, "backy-store", "-b", c.dir, "purge"); r.code != 0 {
			t.Fatalf("the purge after a killed purge: %v", r)
		}
		window = time.Since(start)
	}
	c.im.mutate(t, 2, false)
	c.completeStore(c.version(), true)
	checkChunkFiles(t, c.dir, c.chunks)
	t.Logf("%d SIGKILLs hit purge (%d purges finished first); every remaining revision restored bit-exactly after each", kills, misses)
}
