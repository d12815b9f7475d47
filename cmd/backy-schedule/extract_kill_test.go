package main

// Kill runs of the real backy-extract (built by clitest) freezing a
// loop-mounted guest (internal/freezetest) around a snapshot on the test
// cluster. They live here, beside the daemon's RBD end-to-end test, to
// share its cluster and its build of the commands.

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/backy/backy/internal/clitest"
	"github.com/backy/backy/internal/freezetest"
	"github.com/backy/backy/pkg/rbd/cephtest"
)

// Lines the freeze and thaw commands of the kill runs write to stderr, and
// the lines of backy-extract and its helper the runs look for.
const (
	markFrozen  = "backy-test: frozen"  // the freeze command froze the guest
	markThawing = "backy-test: thawing" // the thaw command began
	lineFrozen  = "guest frozen in "    // backy-extract: the helper said frozen, snapshot next
	lineSnap    = "snapshot taken, guest thawed"
)

// helperThawed is the helper's last word: how long the guest was frozen,
// when (after the start of the freeze) the thaw began, and why.
var helperThawed = regexp.MustCompile(`thawed; (\S+) from freeze to thaw \(thaw began at (\S+): ([^)]*)\)`)

// TestExtractKilledWhileFrozen runs the real `backy-extract rbd` with
// freeze/thaw commands (20 runs; 100 with BACKY_FAULTS_LONG=1) and with
// the real qemu-ga (5; 20), and SIGKILLs its process group - what the
// daemon does when a run's grace period is over - at random moments of
// the freeze and the snapshot: every other run at any moment up to the end
// of the snapshot, the others at a random moment while the guest is
// frozen. Checked each time: the guest is thawed within the freeze timeout
// of the kill (a write into it returns; it waits in the kernel while the
// guest is frozen), the helper has exited and the guest is still thawed
// then (no freeze came after the thaw), and the helper began the thaw no
// later than the timeout after the freeze began. The test counts the runs,
// where they were killed, the guests left frozen (the target is none) and
// the slowest thaw.
func TestExtractKilledWhileFrozen(t *testing.T) {
	conf := cephtest.Start(t)
	g := freezetest.New(t)
	// Each run has an image of its own. A librbd client killed with the
	// image open leaves its watch on the image until the watch times out
	// (30 s); with one image for all runs, a snapshot after such a kill
	// was seen to take 25 s, far beyond the freeze timeout. The images are
	// made one ahead, while the run before goes on, and go with the test
	// cluster.
	images, stop := make(chan string), make(chan struct{})
	var createErr error
	go func() {
		defer close(images)
		for n := 1; ; n++ {
			img := fmt.Sprintf("kill-%d-%d", os.Getpid(), n)
			if _, createErr = cephtest.RunRbd(conf, nil, "create", "--size", "4M", "rbd/"+img); createErr != nil {
				return
			}
			select {
			case images <- img:
			case <-stop:
				return
			}
		}
	}()
	t.Cleanup(func() {
		close(stop)
		for range images {
		}
	})
	newImage := func(t *testing.T) string {
		img, ok := <-images
		if !ok {
			t.Fatal(createErr)
		}
		return img
	}
	cmdRuns, qgaRuns := 20, 5
	if os.Getenv("BACKY_FAULTS_LONG") != "" {
		cmdRuns, qgaRuns = 100, 20
	}
	rescue := func() { exec.Command("fsfreeze", "-u", g.Mount).Run() }
	t.Run("freeze-command", func(t *testing.T) {
		killExtract(t, conf, g, newImage, cmdRuns, rescue, func(r *rand.Rand) []string {
			// A random wait before the freeze and while frozen inside
			// the command, so that kills land in every part of it.
			return []string{
				"--freeze-command", fmt.Sprintf("sleep 0.%03d; %s && echo %s >&2 && sleep 0.%03d",
					r.IntN(300), g.FreezeCommand(), markFrozen, r.IntN(300)),
				"--thaw-command", "echo " + markThawing + " >&2; " + g.ThawCommand(),
			}
		})
	})
	t.Run("guest-agent", func(t *testing.T) {
		a := g.GuestAgent(t)
		killExtract(t, conf, g, newImage, qgaRuns, rescue, func(*rand.Rand) []string {
			return []string{"--guest-agent", a.Socket}
		})
	})
}

// killTimeout is the kill runs' freeze timeout.
const killTimeout = 2 * time.Second

// extractRun is one backy-extract started by killExtract, with its stderr
// (and its helper's) read line by line.
type extractRun struct {
	cmd   *exec.Cmd
	start time.Time
	mu    sync.Mutex
	lines []timedLine
	eof   chan struct{}
}

type timedLine struct {
	at   time.Time
	text string
}

func startExtract(t *testing.T, conf string, args []string) *extractRun {
	t.Helper()
	r := &extractRun{cmd: exec.Command(filepath.Join(clitest.BinDir, "backy-extract"), args...), eof: make(chan struct{})}
	r.cmd.Env = rbdEnv(conf)
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	r.cmd.Stderr = pw
	r.start = time.Now()
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	go func() {
		defer close(r.eof)
		defer pr.Close()
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			r.mu.Lock()
			r.lines = append(r.lines, timedLine{time.Now(), sc.Text()})
			r.mu.Unlock()
		}
	}()
	return r
}

// seen returns when the first line containing one of marks was read, and
// whether one was, among the lines read before until.
func (r *extractRun) seen(until time.Time, marks ...string) (time.Time, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, l := range r.lines {
		if l.at.After(until) {
			break
		}
		for _, m := range marks {
			if strings.Contains(l.text, m) {
				return l.at, true
			}
		}
	}
	return time.Time{}, false
}

func (r *extractRun) text() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var b strings.Builder
	for _, l := range r.lines {
		fmt.Fprintf(&b, "%6dms %s\n", l.at.Sub(r.start).Milliseconds(), l.text)
	}
	return b.String()
}

// killExtract makes runs kill runs of backy-extract rbd with the
// consistency flags flags returns, each on an image newImage makes, after
// one calibration run that is not killed; rescue thaws a guest left
// frozen.
func killExtract(t *testing.T, conf string, g *freezetest.Guest, newImage func(*testing.T) string, runs int, rescue func(), flags func(*rand.Rand) []string) {
	t.Helper()
	rnd := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 13))
	args := func() []string {
		return append(append([]string{"rbd", "--consistency-timeout", killTimeout.String(), "--fallback", "fail"},
			flags(rnd)...), "rbd/"+newImage(t))
	}
	// Calibration: how long after the start the guest is frozen and the
	// snapshot taken, when nothing is killed.
	cal := startExtract(t, conf, args())
	if err := cal.cmd.Wait(); err != nil {
		t.Fatalf("calibration run: %v\n%s", err, cal.text())
	}
	<-cal.eof
	frozenAt, ok1 := cal.seen(time.Now(), lineFrozen)
	snapAt, ok2 := cal.seen(time.Now(), lineSnap)
	if !ok1 || !ok2 {
		t.Fatalf("calibration run: no %q or %q line:\n%s", lineFrozen, lineSnap, cal.text())
	}
	untilSnap, frozenWindow := snapAt.Sub(cal.start), max(snapAt.Sub(frozenAt), 50*time.Millisecond)
	t.Logf("calibration: guest frozen %s after the start, snapshot taken %s after", frozenAt.Sub(cal.start).Round(time.Millisecond), untilSnap.Round(time.Millisecond))

	var before, duringFreeze, whileFrozen, after, leftFrozen int
	var slowest, latestBegin time.Duration
	reasons := map[string]int{}
	for i := range runs {
		r := startExtract(t, conf, args())
		if i%2 == 1 {
			// Once the guest is frozen, anywhere in the frozen window.
			for deadline := time.Now().Add(2 * killTimeout); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
				if _, ok := r.seen(time.Now(), markFrozen, lineFrozen); ok {
					break
				}
			}
			time.Sleep(time.Duration(rnd.Int64N(int64(frozenWindow))))
		} else {
			time.Sleep(time.Duration(rnd.Int64N(int64(untilSnap + untilSnap/5))))
		}
		syscall.Kill(-r.cmd.Process.Pid, syscall.SIGKILL)
		killed := time.Now()
		r.cmd.Wait()
		took, thawed := g.WaitThawed(killTimeout + 5*time.Second)
		// The helper holds the stderr pipe until it exits.
		select {
		case <-r.eof:
		case <-time.After(3*killTimeout + 10*time.Second):
			t.Errorf("run %d: the helper has not exited %s after the kill:\n%s", i, time.Since(killed), r.text())
		}
		if thawed {
			_, thawed = g.WaitThawed(killTimeout)
			if !thawed {
				t.Errorf("run %d: the guest was frozen again after the helper exited", i)
			}
		}
		// Where the kill landed: the lines read before it say whether the
		// guest was frozen; the helper's last line whether a freeze had
		// begun at all.
		m := helperThawed.FindStringSubmatch(r.text())
		_, frozen := r.seen(killed, markFrozen, lineFrozen)
		_, thawing := r.seen(killed, markThawing, lineSnap)
		switch {
		case thawing:
			after++
		case frozen:
			whileFrozen++
		case m != nil && m[3] == "pipe closed during the freeze":
			duringFreeze++
		default:
			before++
		}
		if !thawed {
			leftFrozen++
			t.Errorf("run %d: guest left frozen after the kill:\n%s", i, r.text())
			rescue()
			continue
		}
		slowest = max(slowest, took)
		if took > killTimeout {
			t.Errorf("run %d: guest thawed %s after the kill, later than the freeze timeout %s:\n%s", i, took, killTimeout, r.text())
		}
		if m != nil {
			reasons[m[3]]++
			began, err := time.ParseDuration(m[2])
			if err != nil {
				t.Fatalf("run %d: %q: %v", i, m[0], err)
			}
			latestBegin = max(latestBegin, began)
			// The helper's deadline is the freeze's start plus the timeout
			// (helper.go); a timer firing late on a loaded machine is the
			// only slack.
			if began > killTimeout+250*time.Millisecond {
				t.Errorf("run %d: the helper began the thaw %s after the freeze began, timeout %s:\n%s", i, began, killTimeout, r.text())
			}
		}
	}
	t.Logf("%d kill runs: %d before the freeze, %d during the freeze, %d while frozen (snapshot), %d after the thaw began; "+
		"%d guests left frozen; slowest thaw after the kill %s (timeout %s); helper's thaw reasons %v, latest thaw start %s after the freeze began",
		runs, before, duringFreeze, whileFrozen, after, leftFrozen, slowest.Round(time.Millisecond), killTimeout, reasons, latestBegin)
	if whileFrozen == 0 {
		t.Error("no run was killed while the guest was frozen: the test proves nothing")
	}
}
