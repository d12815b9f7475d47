// Package progress is the one way backy's commands show the progress of long
// work: a line on stderr with the percentage done, a bar, the amount, the
// rate and the time left, redrawn in place a few times a second while stderr
// is a terminal, and removed before anything else is written there. When
// stderr is not a terminal (a log, a pipe), TERM is dumb or the command runs
// with --quiet, nothing of it is written: no escape code, no line.
//
// The work reports nothing itself: a Display polls a Func, usually a
// Counter's Load, that reads the work's own atomic figures, so the hot path
// pays an atomic add at most. The bar is drawn by github.com/vbauerster/mpb
// without colours (NO_COLOR has nothing to turn off).
//
// Two commands of one pipeline (backy-extract | backy-store) share one
// terminal, and two redrawn lines would wreck each other. So a Display draws
// only while it holds an flock on the terminal device: the first command
// takes it, the other waits for it (it draws once the first is done), and
// holds back the lines it has to write until then. A command that waits
// must close its data output before Stop, so that the other can finish.
package progress

import (
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
	"golang.org/x/sys/unix"
)

// Refresh is how often the line is redrawn: 250 ms, or what the
// environment's BACKY_PROGRESS_INTERVAL says (tests of short runs).
var Refresh = refresh()

func refresh() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("BACKY_PROGRESS_INTERVAL")); err == nil && d > 0 {
		return d
	}
	return 250 * time.Millisecond
}

// MaxWait bounds how long Stop waits for another command's line to go
// before it writes its held-back lines anyway.
var MaxWait = time.Minute

// Func reports the work done so far and the whole of it. A total of 0 or
// less means it is not known yet.
type Func func() (done, total int64)

// IsTerminal reports whether f is a terminal.
func IsTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// Active reports whether a progress line would be drawn on w: w is a
// terminal, TERM is not dumb, and quiet is false.
func Active(w io.Writer, quiet bool) bool {
	f, ok := w.(*os.File)
	if quiet || !ok || os.Getenv("TERM") == "dumb" {
		return false
	}
	return IsTerminal(f)
}

// Counter is the work of one run as a Display reads it: the work sets the
// total once it knows it and adds to (or sets) what is done. It is safe for
// concurrent use, and a nil *Counter ignores everything, so the work needs
// no check whether anyone watches.
type Counter struct {
	done, total atomic.Int64
}

// Add counts n more done.
func (c *Counter) Add(n int64) {
	if c != nil {
		c.done.Add(n)
	}
}

// Set says that n are done (a position in an image).
func (c *Counter) Set(n int64) {
	if c != nil {
		c.done.Store(n)
	}
}

// SetTotal says how much the whole work is.
func (c *Counter) SetTotal(n int64) {
	if c != nil {
		c.total.Store(n)
	}
}

// Load returns what is done and the total; it is a Func.
func (c *Counter) Load() (done, total int64) {
	if c == nil {
		return 0, 0
	}
	return c.done.Load(), c.total.Load()
}

// Options tune a Display.
type Options struct {
	// Quiet shows nothing (a command's --quiet).
	Quiet bool
	// Items names what is counted when it is not bytes, e.g. "chunks".
	Items string
}

// Display is one progress line, or nothing at all when there is no
// terminal. Its methods are safe for concurrent use.
type Display struct {
	w     io.Writer // stderr
	label string
	opt   Options
	f     Func
	start time.Time

	mu      sync.Mutex
	tty     *os.File // the terminal, opened again for the lock; nil: inactive
	p       *mpb.Progress
	bar     *mpb.Bar
	held    []string // lines written while another command has the terminal
	stopped bool

	stop chan struct{}
	wg   sync.WaitGroup
	once sync.Once
}

// Start shows a line labelled label on w (the command's stderr) until Stop,
// when Active(w, opt.Quiet); otherwise it returns a Display that writes
// nothing but the lines given to Printf.
func Start(w io.Writer, label string, f Func, opt Options) *Display {
	d := &Display{w: w, label: label, opt: opt, f: f, start: time.Now(), stop: make(chan struct{})}
	if !Active(w, opt.Quiet) {
		return d
	}
	tty, err := os.OpenFile(fmt.Sprintf("/proc/self/fd/%d", w.(*os.File).Fd()), os.O_RDONLY|unix.O_NOCTTY, 0)
	if err != nil {
		return d // no lock, no line: better none than a wrecked one
	}
	d.tty = tty
	d.wg.Go(d.run)
	return d
}

// run takes the terminal as soon as it is free, then copies the work's
// figures into the bar until Stop.
func (d *Display) run() {
	t := time.NewTicker(Refresh / 2)
	defer t.Stop()
	for {
		d.mu.Lock()
		if d.bar == nil && unix.Flock(int(d.tty.Fd()), unix.LOCK_EX|unix.LOCK_NB) == nil {
			d.show()
		}
		d.mu.Unlock()
		if d.bar != nil {
			done, total := d.f()
			if total > 0 {
				d.bar.SetTotal(total, false)
				done = min(done, total)
			}
			d.bar.SetCurrent(done)
		}
		select {
		case <-d.stop:
			return
		case <-t.C:
		}
	}
}

// show starts the bar, and writes the lines held back until now. d.mu is
// held.
func (d *Display) show() {
	counts := decor.Counters(decor.SizeB1024(0), "% .1f / % .1f")
	speed := decor.AverageSpeed(decor.SizeB1024(0), " % .1f", decor.WCSyncSpace)
	if d.opt.Items != "" {
		counts = decor.CountersNoUnit("%d / %d " + d.opt.Items)
		speed = decor.AverageSpeed(nil, " %.0f/s", decor.WCSyncSpace)
	}
	for _, line := range d.held {
		_, _ = io.WriteString(d.w, line)
	}
	d.held = nil
	// (auto refresh: mpb draws a plain io.Writer only when asked to)
	d.p = mpb.New(mpb.WithOutput(sized(d.w)), mpb.WithRefreshRate(Refresh), mpb.WithWidth(100), mpb.WithAutoRefresh())
	_, total := d.f()
	// The average speed and time left count from Start, not from when
	// this command got the terminal.
	d.bar = d.p.New(max(total, 0), mpb.BarStyle().Lbound("[").Rbound("]"),
		mpb.BarWidth(24), mpb.BarRemoveOnComplete(),
		mpb.PrependDecorators(decor.Name(d.label+" "), decor.NewPercentage("%d", decor.WCSyncSpace)),
		mpb.AppendDecorators(counts, speed, decor.Name(" left "), decor.AverageETA(decor.ET_STYLE_MMSS)))
	_ = d.bar.DecoratorAverageAdjust(d.start)
}

// sized is w, or, when w is a terminal that says it has no columns or rows
// (script(1) without a terminal of its own, some serial consoles), w
// behind a plain io.Writer: mpb then draws the width it was given instead
// of nothing.
func sized(w io.Writer) io.Writer {
	f, ok := w.(*os.File)
	if !ok {
		return w
	}
	ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ)
	if err == nil && (ws.Col == 0 || ws.Row == 0) {
		return struct{ io.Writer }{w}
	}
	return w
}

// Printf writes one line to stderr: above the progress line while it is
// shown, so the two never share a line, and after Stop while another
// command's line is shown.
func (d *Display) Printf(format string, a ...any) {
	line := fmt.Sprintf(format, a...)
	if len(line) == 0 || line[len(line)-1] != '\n' {
		line += "\n"
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case d.p != nil && !d.stopped:
		if _, err := d.p.Write([]byte(line)); err == nil {
			return
		}
		_, _ = io.WriteString(d.w, line)
	case d.tty != nil && !d.stopped:
		d.held = append(d.held, line)
	default:
		_, _ = io.WriteString(d.w, line)
	}
}

// Write writes p, one line, as Printf does: a logger's lines
// (pkg/logline) stay above the progress line.
func (d *Display) Write(p []byte) (int, error) {
	d.Printf("%s", p)
	return len(p), nil
}

// Stop removes the progress line and returns the time since Start. Lines
// held back while another command had the terminal are written now, once
// it is free (at most MaxWait later). After Stop, writes to stderr start on
// an empty line. It may be called more than once.
func (d *Display) Stop() time.Duration {
	d.once.Do(func() {
		if d.tty == nil {
			return
		}
		close(d.stop)
		d.wg.Wait()
		d.mu.Lock()
		defer d.mu.Unlock()
		d.stopped = true
		if d.p != nil {
			d.bar.Abort(true)
			d.p.Wait()
		} else if len(d.held) > 0 {
			deadline := time.Now().Add(MaxWait)
			for unix.Flock(int(d.tty.Fd()), unix.LOCK_EX|unix.LOCK_NB) != nil && time.Now().Before(deadline) {
				time.Sleep(Refresh / 5)
			}
		}
		for _, line := range d.held {
			_, _ = io.WriteString(d.w, line)
		}
		d.held = nil
		d.tty.Close() // drops the lock
	})
	return time.Since(d.start)
}
