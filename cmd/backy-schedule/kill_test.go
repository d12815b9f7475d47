package main

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/backy/backy/internal/clitest"
	"github.com/backy/backy/pkg/daemon/daemontest"
	"github.com/backy/backy/pkg/jobstatus"
)

const killConf = `[global]
base-dir = "%[1]s/base"
worker-limit = 2
status-interval = "1s"
console-addresses = []
backoff-initial = "1s"
backoff-max = "1s"

[schedules.fast]
fast = { interval = "2s", keep = 10000 }

[jobs.good]
schedule = "fast"
source = { type = "file", path = "%[1]s/good.img" }

[jobs.bad]
schedule = "fast"
source = { type = "command", command = "exit 1" }
`

// TestKill9 kills backy-schedule with SIGKILL at random moments while its
// jobs run (30 times, 120 in the long mode) and restarts it each time. A
// reader polls the status file all along. Checked: the status file always
// parses (the old or the new version, never a part); after a restart the
// failure count of the failing job is the one the file held when the
// daemon died, plus only the failures the new daemon logged since; every
// revision a status file ever named exists at the end, none is half there,
// every one restores to the image, verify passes; and runs resume.
func TestKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("takes a minute")
	}
	kills := 30
	if os.Getenv("BACKY_FAULTS_LONG") == "1" {
		kills = 120
	}
	dir := t.TempDir()
	conf, logfile := filepath.Join(dir, "backy.conf"), filepath.Join(dir, "daemon.log")
	os.WriteFile(conf, []byte(fmt.Sprintf(killConf, dir)), 0o644)
	image(t, filepath.Join(dir, "good.img"))
	imgSum := sumFile(t, filepath.Join(dir, "good.img"))
	statusPath := filepath.Join(dir, "base", "status")
	good := filepath.Join(dir, "base", "good")

	// The reader: every version of the status file it sees must parse.
	var mu sync.Mutex
	named := map[string]bool{} // revisions any status file named
	reads, bad := 0, []string{}
	stop := make(chan struct{})
	var stopOnce sync.Once
	var wg sync.WaitGroup
	halt := func() { stopOnce.Do(func() { close(stop) }); wg.Wait() }
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			st, err := jobstatus.Read(statusPath)
			mu.Lock()
			switch {
			case errors.Is(err, os.ErrNotExist):
			case err != nil:
				bad = append(bad, err.Error())
			default:
				reads++
				if r := st.Jobs["good"].LastRevision; r != "" {
					named[r] = true
				}
				for name, j := range st.Jobs {
					if j.Failures < 0 || !validResult(j.LastResult) {
						bad = append(bad, fmt.Sprintf("job %s: failures %d, last result %q", name, j.Failures, j.LastResult))
					}
				}
			}
			mu.Unlock()
			time.Sleep(5 * time.Millisecond)
		}
	})
	defer halt()

	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 9))
	var atKill *jobstatus.Status
	for i := range kills + 1 {
		d := startDaemon(t, "-c", conf, "-l", logfile)
		pid := d.Pid()
		logBefore := fileLen(logfile)
		if atKill != nil {
			// The first status the new daemon writes carries the counts it
			// read back, plus the failures it logged since.
			var st *jobstatus.Status
			eventually(t, 30*time.Second, "a status file of the restarted daemon", func() (bool, string) {
				var err error
				st, err = jobstatus.Read(statusPath)
				return err == nil && st.PID == pid, fmt.Sprint(err)
			})
			after := st.Jobs["bad"]
			logged := strings.Count(readFrom(t, logfile, logBefore), "bad: run failed")
			before := atKill.Jobs["bad"]
			if after.Failures < before.Failures || after.Failures > before.Failures+logged {
				t.Errorf("restart %d: the failing job has %d failures; the file said %d when the daemon was killed, and %d failed runs were logged since",
					i, after.Failures, before.Failures, logged)
			}
			if g := st.Jobs["good"]; g.LastRevision != "" && g.LastRevision != atKill.Jobs["good"].LastRevision && !strings.Contains(readFrom(t, logfile, logBefore), g.LastRevision) {
				t.Errorf("restart %d: last revision %s is neither the one the file named nor one the new daemon made", i, g.LastRevision)
			}
		}
		if i == kills {
			// Runs resume: the good job makes a new revision, the bad one
			// fails again.
			n := len(revisions(good))
			eventually(t, time.Minute, "runs resuming after the last restart", func() (bool, string) {
				st, err := jobstatus.Read(statusPath)
				return err == nil && len(revisions(good)) > n && st.Jobs["bad"].Failures > atKill.Jobs["bad"].Failures,
					fmt.Sprintf("%d revisions, was %d; %v", len(revisions(good)), n, err)
			})
			d.Signal(syscall.SIGTERM)
			if code := d.Exit(time.Minute); code != 0 {
				t.Errorf("exit %d after SIGTERM: %s", code, d.Stderr())
			}
			break
		}
		time.Sleep(time.Duration(100+rng.IntN(1900)) * time.Millisecond)
		d.Kill()
		st, err := jobstatus.Read(statusPath)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("kill %d: status file: %v", i, err)
		}
		atKill = st
		if st == nil {
			atKill = &jobstatus.Status{Jobs: map[string]jobstatus.Job{}}
		}
	}
	waitOrphans(t, dir)
	halt()
	mu.Lock()
	defer mu.Unlock()
	for _, b := range bad {
		t.Errorf("status file: %s", b)
	}

	revs := revisions(good)
	check := map[string]bool{}
	for id := range named {
		if !contains(revs, id) {
			t.Errorf("revision %s named in a status file is lost", id)
		}
		check[id] = true
	}
	for _, id := range revs {
		if _, err := os.Stat(filepath.Join(good, "revisions", id+".idx")); err != nil {
			t.Errorf("revision %s is half there: %v", id, err)
		}
	}
	// Every revision named in a status file restores, and a few others.
	for _, i := range rng.Perm(len(revs))[:min(4, len(revs))] {
		check[revs[i]] = true
	}
	for id := range check {
		out := filepath.Join(dir, "restored.img")
		if b, err := runBin("backy-restore", "-b", good, "-r", id, out); err != nil {
			t.Errorf("restore of %s: %v %s", id, err, b)
		} else if sumFile(t, out) != imgSum {
			t.Errorf("revision %s does not restore to the image", id)
		}
	}
	if b, err := runBin("backy-store", "-b", good, "verify", "--all"); err != nil {
		t.Errorf("verify after the kills: %v %s", err, b)
	}
	final, _ := jobstatus.Read(statusPath)
	t.Logf("%d SIGKILLs of backy-schedule; %d revisions, %d of them named in status files, %d restored; the failing job at %d failures; %d reads of the status file, %d bad",
		kills, len(revs), len(named), len(check), final.Jobs["bad"].Failures, reads, len(bad))
}

func validResult(s string) bool {
	return s == "" || s == "ok" || s == "failed" || s == "interrupted"
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func sumFile(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	io.Copy(h, f)
	return hex.EncodeToString(h.Sum(nil))
}

func fileLen(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return st.Size()
}

func readFrom(t *testing.T, path string, off int64) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil || int64(len(b)) < off {
		return ""
	}
	return string(b[off:])
}

func runBin(name string, args ...string) ([]byte, error) {
	c := exec.Command(filepath.Join(clitest.BinDir, name), args...)
	c.Env = env()
	return c.CombinedOutput()
}

// waitOrphans waits for the pipelines a killed daemon left running (they
// run in process groups of their own and finish their work), and kills
// any still there after a minute.
func waitOrphans(t *testing.T, dir string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		pids := daemontest.ProcessesUnder(dir)
		if len(pids) == 0 {
			return
		}
		if time.Now().After(deadline) {
			for _, pid := range pids {
				syscall.Kill(pid, syscall.SIGKILL)
			}
			t.Errorf("processes of killed daemons still running after a minute: %v", pids)
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}
