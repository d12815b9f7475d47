package progress

import (
	"bytes"
	"io"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"
)

// terminal opens a pseudo-terminal of 40x120 and collects what reaches it;
// done closes the terminal's side and returns the bytes.
func terminal(t *testing.T) (tty *os.File, done func() string) {
	return terminalOf(t, 40, 120)
}

func terminalOf(t *testing.T, rows, cols uint16) (tty *os.File, done func() string) {
	t.Helper()
	master, slave, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	if err := pty.Setsize(master, &pty.Winsize{Rows: rows, Cols: cols}); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	read := make(chan struct{})
	go func() {
		_, _ = io.Copy(&buf, master)
		close(read)
	}()
	return slave, func() string {
		slave.Close()
		<-read
		master.Close()
		return buf.String()
	}
}

var frame = regexp.MustCompile(`work +(\d+)% \[[=>-]+\] [0-9.]+ (b|KiB|MiB) / 4\.0 MiB +[0-9.]+ (b|KiB|MiB)/s left \d\d:\d\d`)

func TestDisplayOnTerminal(t *testing.T) {
	t.Setenv("TERM", "xterm")
	tty, done := terminal(t)
	var c Counter
	c.SetTotal(4 << 20)
	d := Start(tty, "work", c.Load, Options{})
	start := time.Now()
	for range 40 {
		c.Add(100 << 10)
		time.Sleep(30 * time.Millisecond)
	}
	d.Printf("a line of report")
	time.Sleep(3 * Refresh)
	d.Stop()
	took := time.Since(start)
	_, _ = tty.WriteString("after\n")
	out := done()

	frames := frame.FindAllStringSubmatch(out, -1)
	if len(frames) < 2 {
		t.Fatalf("%d progress frames, want several:\n%q", len(frames), out)
	}
	// At most a few redraws a second (one per Refresh, and the last one).
	if limit := int(took/Refresh) + 2; len(frames) > limit {
		t.Errorf("%d frames in %v, more than one per %v", len(frames), took, Refresh)
	}
	if last := frames[len(frames)-1][1]; last != "97" && last != "98" {
		t.Errorf("last frame at %s%%, want 97 or 98 (4000 KiB of 4096)", last)
	}
	// The report line stands on a line of its own, the progress line is
	// erased before it is written and before anything after Stop.
	if !strings.Contains(out, "\r\n\x1b[1A\x1b[Ja line of report\r\n") {
		t.Errorf("report line not on a cleared line of its own:\n%q", out)
	}
	if !strings.HasSuffix(out, "\x1b[1A\x1b[Jafter\r\n") {
		t.Errorf("progress line not erased at Stop:\n%q", out[max(0, len(out)-300):])
	}
	if strings.Contains(out, "\x1b[3") || strings.Contains(out, "\x1b[0m") {
		t.Errorf("colour codes on the terminal:\n%q", out)
	}
}

// A terminal that says it is 0x0 (script(1) without a terminal of its
// own, some serial consoles and ssh sessions) gets the line all the same,
// 100 columns wide: it got none.
func TestDisplayOnTerminalOfNoSize(t *testing.T) {
	t.Setenv("TERM", "xterm")
	tty, done := terminalOf(t, 0, 0)
	var c Counter
	c.SetTotal(4 << 20)
	d := Start(tty, "work", c.Load, Options{})
	for range 20 {
		c.Add(100 << 10)
		time.Sleep(30 * time.Millisecond)
	}
	time.Sleep(2 * Refresh)
	d.Stop()
	if out := done(); len(frame.FindAllString(out, -1)) < 1 {
		t.Fatalf("no progress frame on a 0x0 terminal:\n%q", out)
	}
}

func TestDisplayOffTerminal(t *testing.T) {
	for _, tc := range []struct {
		name  string
		term  string
		quiet bool
		file  bool
	}{
		{"pipe", "xterm", false, true},
		{"dumb terminal", "dumb", false, false},
		{"quiet", "xterm", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("TERM", tc.term)
			var w *os.File
			var done func() string
			if tc.file {
				r, pw, err := os.Pipe()
				if err != nil {
					t.Fatal(err)
				}
				w = pw
				var buf bytes.Buffer
				read := make(chan struct{})
				go func() { _, _ = io.Copy(&buf, r); close(read) }()
				done = func() string { pw.Close(); <-read; return buf.String() }
			} else {
				w, done = terminal(t)
			}
			var c Counter
			c.SetTotal(100)
			d := Start(w, "work", c.Load, Options{Quiet: tc.quiet})
			c.Add(50)
			time.Sleep(2 * Refresh)
			d.Printf("line %d", 1)
			d.Stop()
			out := done()
			want := "line 1\n"
			if !tc.file {
				want = "line 1\r\n"
			}
			if out != want {
				t.Errorf("got %q, want only %q", out, want)
			}
		})
	}
}

// Two commands of a pipeline on one terminal: one line at a time; the
// second holds its report lines back until the first is done, then shows
// its own line.
func TestDisplayTakesTurns(t *testing.T) {
	t.Setenv("TERM", "xterm")
	tty, done := terminal(t)
	var a, b Counter
	a.SetTotal(4 << 20)
	b.SetTotal(4 << 20)
	first := Start(tty, "first", a.Load, Options{})
	time.Sleep(2 * Refresh)
	second := Start(tty, "second", b.Load, Options{})
	second.Printf("second's report")
	a.Add(1 << 20)
	b.Add(1 << 20)
	time.Sleep(3 * Refresh)
	first.Printf("first's report")
	time.Sleep(2 * Refresh)
	first.Stop()
	time.Sleep(3 * Refresh)
	second.Stop()
	out := done()

	iFirst := strings.LastIndex(out, "first  ")
	iSecond := strings.Index(out, "second  ")
	if iFirst < 0 || iSecond < 0 {
		t.Fatalf("want both lines drawn, one after the other:\n%q", out)
	}
	if iSecond < iFirst {
		t.Errorf("second drawn while the first was shown:\n%q", out)
	}
	iHeld := strings.Index(out, "second's report")
	if iHeld < iFirst || iHeld > iSecond {
		t.Errorf("second's report not written between the two lines:\n%q", out)
	}
	if !strings.HasSuffix(out, "\x1b[1A\x1b[J") {
		t.Errorf("second line not erased at the end:\n%q", out[max(0, len(out)-200):])
	}
}
