// Package clitest helps the testscript tests of the commands: it builds the
// other backy commands once per test binary so scripts can run real
// pipelines (backy-extract | backy-store | backy-restore), and sets up the
// script environment.
package clitest

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/rogpeppe/go-internal/testscript"
)

// BuildCommands builds every ./cmd/backy-* command except skip into a new
// temporary directory and returns it. It is called from TestMain, before
// testscript takes over.
func BuildCommands(skip string) (string, error) {
	dir, err := os.MkdirTemp("", "backy-bin-")
	if err != nil {
		return "", err
	}
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	matches, _ := filepath.Glob(filepath.Join(root, "cmd", "backy-*"))
	var pkgs []string
	for _, m := range matches {
		if filepath.Base(m) != skip {
			pkgs = append(pkgs, "./cmd/"+filepath.Base(m))
		}
	}
	args := append([]string{"build", "-o", dir + "/"}, pkgs...)
	if tags := buildTags(); tags != "" {
		args = append([]string{"build", "-tags", tags, "-o", dir + "/"}, pkgs...)
	}
	cmd := exec.Command("go", args...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return dir, nil
}

// buildTags are $BACKY_BUILD_TAGS, or else the tags the test binary was
// built with: a test run with -tags librbd,pacific runs commands that
// reach Ceph (rados: repositories) too.
func buildTags() string {
	if tags := os.Getenv("BACKY_BUILD_TAGS"); tags != "" {
		return tags
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "-tags" {
				return s.Value
			}
		}
	}
	return ""
}

func moduleRoot() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", fmt.Errorf("clitest: cannot find module root")
	}
	return filepath.Join(filepath.Dir(file), "..", ".."), nil
}

// Run runs the scripts of p as subtests of t, in a work directory root
// that is removed when t ends. testscript removes its own root only when
// its last script ends, so a run with -run picking some scripts left an
// empty /tmp/go-test-script* behind every time.
func Run(t *testing.T, p testscript.Params) {
	if p.WorkdirRoot == "" {
		root, err := os.MkdirTemp("", "go-test-script")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(root) })
		p.WorkdirRoot = root
	}
	testscript.Run(t, p)
}

// Params returns testscript parameters for the scripts in dir, with binDir
// on PATH and the helper commands scripts share.
func Params(dir, binDir string) testscript.Params {
	return testscript.Params{
		Dir: dir,
		Setup: func(env *testscript.Env) error {
			env.Setenv("PATH", binDir+string(os.PathListSeparator)+env.Getenv("PATH"))
			env.Setenv("HOME", env.WorkDir)
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"mkimage":      mkimage,
			"exits":        exits,
			"corruptchunk": corruptchunk,
			"flipbyte":     flipbyte,
			"interrupt":    interrupt,
			"stallout":     stallout,
			"fifoin":       fifoin,
			"treehash":     treehash,
			"truncatefile": truncatefile,
			"ttyexec":      ttyexec,
			"setid":        setid,
		},
		RequireExplicitExec: true,
		Condition: func(cond string) (bool, error) {
			if cond == "root" {
				return os.Getuid() == 0, nil
			}
			return false, fmt.Errorf("unknown condition %q", cond)
		},
	}
}

// mkimage FILE SIZE [OFFSET:LENGTH[:BYTE]]...: make a sparse test image of
// SIZE bytes with the given ranges filled with a pseudo-random pattern (or
// a fixed BYTE), so scripts need no binary fixtures.
func mkimage(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: mkimage FILE SIZE [OFFSET:LENGTH[:BYTE]]...")
	}
	f, err := os.Create(ts.MkAbs(args[0]))
	ts.Check(err)
	defer f.Close()
	size := parseSize(ts, args[1])
	ts.Check(f.Truncate(size))
	seed := uint32(size) | 1
	for _, r := range args[2:] {
		parts := strings.Split(r, ":")
		off, length := parseSize(ts, parts[0]), parseSize(ts, parts[1])
		b := make([]byte, length)
		for i := range b {
			if len(parts) == 3 {
				b[i] = byte(parseSize(ts, parts[2]))
				continue
			}
			seed ^= seed << 13
			seed ^= seed >> 17
			seed ^= seed << 5
			b[i] = byte(seed)
		}
		_, err := f.WriteAt(b, off)
		ts.Check(err)
	}
}

// parseSize reads a byte count with an optional K, M or G suffix.
func parseSize(ts *testscript.TestScript, s string) int64 {
	mult := int64(1)
	switch {
	case strings.HasSuffix(s, "K"):
		mult, s = 1<<10, strings.TrimSuffix(s, "K")
	case strings.HasSuffix(s, "M"):
		mult, s = 1<<20, strings.TrimSuffix(s, "M")
	case strings.HasSuffix(s, "G"):
		mult, s = 1<<30, strings.TrimSuffix(s, "G")
	}
	var n int64
	if _, err := fmt.Sscan(s, &n); err != nil {
		ts.Fatalf("bad size %q", s)
	}
	return n * mult
}

// exits N CMD [ARGS...]: run CMD like exec and check that it exits with
// status N; its stdout and stderr can be matched afterwards.
func exits(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: exits N CMD [ARGS...]")
	}
	var want int
	if _, err := fmt.Sscan(args[0], &want); err != nil {
		ts.Fatalf("bad exit status %q", args[0])
	}
	wantExit(ts, args[1], ts.Exec(args[1], args[2:]...), want)
}

// wantExit fails the script unless err (of running name) is exit status want.
func wantExit(ts *testscript.TestScript, name string, err error, want int) {
	got := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		got = ee.ExitCode()
	case err != nil:
		ts.Fatalf("%s: %v", name, err)
	}
	if got != want {
		ts.Fatalf("%s exited %d, want %d", name, got, want)
	}
}

// corruptchunk REPO [N]: flip one byte in the middle of the N-th chunk
// file (in name order, default the first) of a repository.
func corruptchunk(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 1 {
		ts.Fatalf("usage: corruptchunk REPO [N]")
	}
	files, _ := filepath.Glob(filepath.Join(ts.MkAbs(args[0]), "chunks", "*", "*"))
	sort.Strings(files)
	n := 0
	if len(args) > 1 {
		fmt.Sscan(args[1], &n)
	}
	if n >= len(files) {
		ts.Fatalf("repository has %d chunk files", len(files))
	}
	ts.Check(FlipByte(files[n]))
}

// flipbyte FILE: flip one bit of the middle byte of FILE (FlipByte).
func flipbyte(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: flipbyte FILE")
	}
	ts.Check(FlipByte(ts.MkAbs(args[0])))
}

// FlipByte damages a (read-only) chunk file: one bit of its middle byte is
// flipped and the file is left read-only, as backy-store writes it.
func FlipByte(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if len(b) == 0 {
		return fmt.Errorf("flipbyte: %s is empty", path)
	}
	b[len(b)/2] ^= 0x40
	if err := os.Chmod(path, 0o644); err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o444)
}

// treehash DIR FILE: write TreeDigest(DIR) to FILE, so a script can prove
// with cmp that a failed command changed nothing.
func treehash(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: treehash DIR FILE")
	}
	digest, err := TreeDigest(ts.MkAbs(args[0]))
	ts.Check(err)
	ts.Check(os.WriteFile(ts.MkAbs(args[1]), []byte(digest), 0o644))
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// TreeDigest lists every directory and file under root with the SHA-256 of
// its content, one per line in name order, leaving out locks/ (its files
// come and go with every command and hold a pid).
func TreeDigest(root string) (string, error) {
	var lines []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "locks" {
			return filepath.SkipDir
		}
		if d.IsDir() {
			lines = append(lines, rel+"/")
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		lines = append(lines, fmt.Sprintf("%s %x", rel, sha256.Sum256(b)))
		return nil
	})
	if err != nil {
		return "", err
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n") + "\n", nil
}

// BinDir is where Main put the other commands, for Params.
var BinDir string

// cleanupM removes the built commands after the tests ran.
type cleanupM struct{ m testscript.TestingM }

func (c cleanupM) Run() int {
	defer os.RemoveAll(BinDir)
	return c.m.Run()
}

// Main is the TestMain of a command's package: run is the command itself,
// registered with testscript under name; every other command is built into
// BinDir first. When the test binary is re-executed as the command, nothing
// is built.
func Main(m testscript.TestingM, name string, run func() int) {
	if filepath.Base(os.Args[0]) != name {
		var err error
		if BinDir, err = BuildCommands(name); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		m = cleanupM{m}
	}
	testscript.Main(m, map[string]func(){name: func() { os.Exit(run()) }})
}

// truncatefile FILE N: cut FILE to N bytes.
func truncatefile(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: truncatefile FILE N")
	}
	ts.Check(os.Truncate(ts.MkAbs(args[0]), parseSize(ts, args[1])))
}

// ttyexec [-stdin FILE] PROG ARGS...: run PROG with its stderr on a
// pseudo-terminal (40 rows, 120 columns) and its stdout captured apart, so a
// script can check what a person at a terminal sees (as stderr, raw, escape
// codes and all) and that the data on stdout stayed intact.
func ttyexec(ts *testscript.TestScript, neg bool, args []string) {
	var stdin string
	if len(args) > 2 && args[0] == "-stdin" {
		stdin, args = args[1], args[2:]
	}
	if len(args) == 0 {
		ts.Fatalf("usage: ttyexec [-stdin FILE] PROG ARGS...")
	}
	out, errs, err := RunOnTTY(ts.MkAbs("."), ts.Getenv("PATH"), environ(ts), stdin, args...)
	ts.Logf("[tty stderr, the last 800 bytes]\n%q", errs[max(0, len(errs)-800):])
	ts.Stdout().Write(out) // keep ts's buffers for stdout/stderr matching
	ts.Stderr().Write(errs)
	if err != nil && !neg {
		ts.Fatalf("%s: %v", args[0], err)
	}
	if err == nil && neg {
		ts.Fatalf("%s: unexpected success", args[0])
	}
}

// environ is the environment of a script's commands, as far as ttyexec
// needs it: the test process's own with the script's PATH and HOME and the
// variables that change terminal output.
func environ(ts *testscript.TestScript) []string {
	env := os.Environ()
	for _, k := range []string{"PATH", "HOME", "TERM", "NO_COLOR", "BACKY_PROGRESS_INTERVAL"} {
		if v := ts.Getenv(k); v != "" {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// RunOnTTY runs args in dir with env, stdin from the file stdin (none when
// empty) and stderr on a new pseudo-terminal of 40 rows and 120 columns; it
// returns the command's stdout and all that reached the terminal.
func RunOnTTY(dir, path string, env []string, stdin string, args ...string) (stdout, tty []byte, err error) {
	prog := lookPath(path, args[0])
	master, slave, err := pty.Open()
	if err != nil {
		return nil, nil, err
	}
	defer master.Close()
	if err := pty.Setsize(master, &pty.Winsize{Rows: 40, Cols: 120}); err != nil {
		slave.Close()
		return nil, nil, err
	}
	cmd := exec.Command(prog, args[1:]...)
	cmd.Dir, cmd.Env, cmd.Stderr = dir, env, slave
	var out bytes.Buffer
	cmd.Stdout = &out
	if stdin != "" {
		f, err := os.Open(filepath.Join(dir, stdin))
		if err != nil {
			slave.Close()
			return nil, nil, err
		}
		defer f.Close()
		cmd.Stdin = f
	}
	err = cmd.Start()
	slave.Close()
	if err != nil {
		return nil, nil, err
	}
	var seen bytes.Buffer
	read := make(chan struct{})
	go func() {
		_, _ = io.Copy(&seen, master) // ends with EIO once the command's side is closed
		close(read)
	}()
	err = cmd.Wait()
	<-read
	return out.Bytes(), seen.Bytes(), err
}

// lookPath finds prog in the directories of path (a script's PATH, not the
// test process's); a name with a slash is taken as it is.
func lookPath(path, prog string) string {
	if strings.Contains(prog, "/") {
		return prog
	}
	for _, d := range filepath.SplitList(path) {
		if st, err := os.Stat(filepath.Join(d, prog)); err == nil && st.Mode().IsRegular() {
			return filepath.Join(d, prog)
		}
	}
	return prog
}

// interrupt [-INT] N FILE PROG ARGS...: run PROG with FILE's bytes on a
// stdin pipe whose writer then stays open and silent, as a producer that
// hangs (a stuck RBD read, a stalled ssh). Once PROG has read the pipe empty
// and had settle to wait in its next read, send it SIGTERM (SIGINT with
// -INT) and check that it exits with status N within InterruptWait; the
// writer closes only after that, so a command that ends only at EOF fails.
// PROG's stdout and stderr can be matched afterwards.
func interrupt(ts *testscript.TestScript, neg bool, args []string) {
	sig, args := signalFlag(args)
	if neg || len(args) < 3 {
		ts.Fatalf("usage: interrupt [-INT] N FILE PROG ARGS...")
	}
	want := exitArg(ts, args[0])
	data, err := os.ReadFile(ts.MkAbs(args[1]))
	ts.Check(err)
	pr, pw, err := os.Pipe()
	ts.Check(err)
	defer pw.Close()
	cmd := exec.Command(lookPath(ts.Getenv("PATH"), args[2]), args[3:]...)
	var stdout, stderr bytes.Buffer
	cmd.Dir, cmd.Env, cmd.Stdin, cmd.Stdout, cmd.Stderr = ts.MkAbs("."), environ(ts), pr, &stdout, &stderr
	err = cmd.Start()
	pr.Close()
	ts.Check(err)
	s := &signalled{ts: ts, cmd: cmd, name: args[2], stdout: stdout.Bytes, stderr: &stderr, exited: make(chan error, 1)}
	go func() { s.exited <- cmd.Wait() }()
	written := make(chan error, 1)
	go func() { _, err := pw.Write(data); written <- err }()
	// Wait until PROG has taken in every byte: the write returned and the
	// pipe holds nothing (FIONREAD works on either end of a pipe).
	deadline := time.Now().Add(InterruptWait)
	for drained := false; !drained; {
		select {
		case err := <-s.exited:
			s.output()
			ts.Fatalf("%s exited before it was interrupted: %v", args[2], err)
		case err := <-written:
			if err != nil { // most likely PROG exited: say how
				select {
				case xerr := <-s.exited:
					s.exited <- xerr
					continue
				case <-time.After(InterruptWait):
				}
				s.fail("writing %s's stdin: %v", args[2], err)
			}
			written = nil
		case <-time.After(10 * time.Millisecond):
		}
		drained = written == nil && inPipe(ts, pw) == 0
		if !drained && time.Now().After(deadline) {
			s.fail("%s did not read its %d bytes of stdin within %v", args[2], len(data), InterruptWait)
		}
	}
	s.signal(sig, want, "while its stdin's writer stayed open")
}

// OtherUsersDir returns a new test directory that every account can
// traverse (as /srv is), for a test that runs commands as other accounts;
// such a test needs root, and is skipped without it unless
// BACKY_REQUIRE_TOOLS=1 makes that a failure.
func OtherUsersDir(t testing.TB) string {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("BACKY_REQUIRE_TOOLS") == "1" {
			t.Fatal("needs root to act as other accounts")
		}
		t.Skip("needs root to act as other accounts")
	}
	dir := t.TempDir()
	for p := dir; p != "/" && p != filepath.Clean(os.TempDir()); p = filepath.Dir(p) {
		os.Chmod(p, 0o711)
	}
	return dir
}

// InterruptWait is how long interrupt waits for a command to read its
// input, and then to exit once signalled: far longer than an interrupted
// command needs, far shorter than a test's timeout.
const InterruptWait = 5 * time.Second

// ExitCode is the exit status of a finished command (Run or Wait's
// error): 0, the code, or minus the signal that killed it. Any other error
// fails the test.
func ExitCode(t testing.TB, err error) int {
	if err == nil {
		return 0
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("running a command: %v", err)
	}
	if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return -int(ws.Signal())
	}
	return ee.ExitCode()
}

// setid VAR: set VAR to the first line of the last command's stdout (the
// revision id backy-store prints), for exact stderr matches.
func setid(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: setid VAR")
	}
	out := strings.TrimSpace(ts.ReadFile("stdout"))
	if out == "" {
		ts.Fatalf("stdout is empty")
	}
	ts.Setenv(args[0], strings.SplitN(out, "\n", 2)[0])
}
