package quiesce

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/backy/backy/pkg/logline"
)

// HelperEnv is set in the environment of the helper process; it holds the
// helper's spec as JSON.
const HelperEnv = "BACKY_QUIESCE_HELPER"

// spec is what the helper needs to know.
type spec struct {
	FreezeCommand string        `json:"freeze_command,omitempty"`
	ThawCommand   string        `json:"thaw_command,omitempty"`
	GuestAgent    string        `json:"guest_agent,omitempty"`
	Env           []string      `json:"env,omitempty"`
	Timeout       time.Duration `json:"timeout"`
}

func (s *spec) freezer() freezer {
	if s.GuestAgent != "" {
		return guestAgent{socket: s.GuestAgent}
	}
	return commands{freeze: s.FreezeCommand, thaw: s.ThawCommand, env: s.Env}
}

// HelperMain is the helper process: a program calls it first thing in main
// when HelperEnv is set and exits with its result. It reads commands on
// stdin and answers on file descriptor 3.
func HelperMain() int {
	// Neither the run's end (SIGTERM to everyone, as systemd does) nor a
	// closed pipe may stop the helper before it has thawed; every step it
	// takes is bounded by the timeout.
	signal.Ignore(syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGPIPE)
	log := logline.New(os.Stderr, fmt.Sprintf("backy quiesce helper %d", os.Getpid()))
	var s spec
	js := os.Getenv(HelperEnv)
	// The freeze and thaw commands inherit the environment: a backy-extract
	// they start must not take itself for a helper.
	os.Unsetenv(HelperEnv)
	if err := json.Unmarshal([]byte(js), &s); err != nil || s.Timeout <= 0 {
		log.Info(fmt.Sprintf("bad spec in $%s: %v", HelperEnv, err))
		return 2
	}
	out := os.NewFile(3, "replies")
	if out == nil {
		log.Info("no reply pipe on file descriptor 3")
		return 2
	}
	if err := serve(os.Stdin, out, &s, log); err != nil {
		log.Info(fmt.Sprintf("%v", err))
		return 1
	}
	return 0
}

// serve is the helper's protocol. The parent sends "freeze"; the helper
// freezes and answers "frozen" or "failed MSG". The parent sends "thaw";
// the helper thaws, with retries, and answers "thawed NANOSECONDS" (the
// time from the start of the freeze to the end of the thaw) or
// "thaw-failed MSG". The thaw runs after any attempted freeze: also when
// the freeze failed, and when the parent's pipe closes (it died).
//
// The helper keeps its own deadline, the start of the freeze plus the
// timeout, and does not wait for the parent beyond it: a freeze still
// running then is stopped, a guest still frozen then is thawed, told or
// not. The parent gives up the snapshot at its own deadline, which comes
// first (it starts counting before it sends "freeze"), so a snapshot it
// keeps was made before the helper can have thawed. The thaw therefore
// begins at the latest at the deadline - later only by the time it takes
// to end a freeze command still running then, which must be gone before
// the thaw (see waitGroupGone) - and at once when the parent dies; the
// guest is thawed when the thaw returns. The helper logs when the thaw
// began and why, and how long the guest was frozen.
func serve(in io.Reader, out io.Writer, s *spec, log *slog.Logger) error {
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(in)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	reply := func(format string, args ...any) { fmt.Fprintf(out, format+"\n", args...) }
	first, ok := <-lines
	if !ok {
		return nil // the parent never asked for a freeze
	}
	if first != "freeze" {
		return fmt.Errorf("expected freeze, got %q", first)
	}
	f := s.freezer()
	start := time.Now()
	deadline := start.Add(s.Timeout)
	fctx, cancel := context.WithDeadline(context.Background(), deadline)
	ferr := make(chan error, 1)
	go func() { ferr <- f.Freeze(fctx) }()
	why := ""
	var err error
	select {
	case err = <-ferr:
	case _, ok := <-lines:
		// The parent closed the pipe - it died, or its run is being
		// stopped - (or misspoke) during the freeze: stop it and thaw. A guest agent's freeze cannot be stopped; it ends within
		// the timeout.
		why = "pipe closed during the freeze"
		if ok {
			why = "unexpected line during the freeze"
		}
		cancel()
		err = <-ferr
	}
	cancel()
	switch {
	case errors.Is(err, errNothingFrozen):
		log.Info(fmt.Sprintf("freeze failed after %s: %v; no thaw", since(start), err))
		reply("failed %s", oneLine(err.Error()))
		reply("thawed 0")
		return nil
	case err != nil:
		why = cmp.Or(why, "freeze failed")
		log.Info(fmt.Sprintf("freeze failed after %s: %v; thawing", since(start), err))
		reply("failed %s", oneLine(err.Error()))
	case why != "":
		reply("frozen")
	default:
		reply("frozen")
		t := time.NewTimer(time.Until(deadline))
		select {
		case line, ok := <-lines:
			switch {
			case !ok:
				why = "pipe closed while frozen"
			case line != "thaw":
				why = fmt.Sprintf("expected thaw, got %q", line)
			default:
				why = "asked"
			}
		case <-t.C:
			why = "timeout, not asked"
		}
		t.Stop()
	}
	began := time.Since(start)
	if why != "asked" {
		log.Info(fmt.Sprintf("thawing %s after the freeze began: %s", began.Round(time.Millisecond), why))
	}
	if err := thaw(f, s.Timeout, log); err != nil {
		reply("thaw-failed %s", oneLine(err.Error()))
		return err
	}
	reply("thawed %d", time.Since(start))
	log.Info(fmt.Sprintf("thawed; %s from freeze to thaw (thaw began at %s: %s)", since(start), began.Round(time.Millisecond), why))
	return nil
}

func since(t time.Time) string { return time.Since(t).Round(time.Millisecond).String() }

// helper is the parent's end of a running helper.
type helper struct {
	cmd     *exec.Cmd
	w       io.WriteCloser
	replies chan string
}

// startHelper starts the helper in a session of its own.
func startHelper(argv []string, s *spec) (*helper, error) {
	var cmd *exec.Cmd
	if len(argv) == 0 {
		// This very executable, under the name it was started by (a
		// multi-call binary may tell its parts by it).
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("quiesce: finding the helper: %w", err)
		}
		cmd = exec.Command(exe)
		cmd.Args[0] = os.Args[0]
	} else {
		cmd = exec.Command(argv[0], argv[1:]...)
	}
	js, err := json.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("quiesce: %w", err)
	}
	cmd.Env = append(os.Environ(), HelperEnv+"="+string(js))
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	w, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("quiesce: %w", err)
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("quiesce: %w", err)
	}
	cmd.ExtraFiles = []*os.File{pw}
	if err := cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
		return nil, fmt.Errorf("quiesce: starting the helper: %w", err)
	}
	pw.Close()
	h := &helper{cmd: cmd, w: w, replies: make(chan string, 4)}
	go func() {
		defer close(h.replies)
		defer pr.Close()
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			h.replies <- sc.Text()
		}
	}()
	return h, nil
}

// ask sends line and waits for the reply. When ctx ends first the pipe to
// the helper is closed, which makes it stop and thaw.
func (h *helper) ask(ctx context.Context, line string) (string, error) {
	if _, err := io.WriteString(h.w, line+"\n"); err != nil {
		return "", fmt.Errorf("quiesce: helper: %w", err)
	}
	select {
	case r, ok := <-h.replies:
		if !ok {
			return "", errors.New("quiesce: the helper ended without an answer")
		}
		return r, nil
	case <-ctx.Done():
		h.w.Close()
		return "", ctx.Err()
	}
}

// finish waits for the helper's answer to the thaw (asked by "thaw" or by
// a closed pipe) and for it to exit.
func (h *helper) finish(asked bool) (time.Duration, error) {
	var r string
	if asked {
		io.WriteString(h.w, "thaw\n")
	}
	h.w.Close()
	for line := range h.replies {
		r = line // the last reply is the thaw's
	}
	werr := h.cmd.Wait()
	word, rest, _ := strings.Cut(r, " ")
	switch word {
	case "thawed":
		ns, _ := strconv.ParseInt(rest, 10, 64)
		return time.Duration(ns), nil
	case "thaw-failed":
		// the helper's message is thaw's error, which says THAW FAILED
		return 0, fmt.Errorf("%w: %s", ErrThaw, strings.TrimPrefix(rest, ErrThaw.Error()+": "))
	}
	return 0, fmt.Errorf("%w: the helper said %q and exited: %v", ErrThaw, r, werr)
}

// snapshotFrozen freezes through the helper, snapshots, and thaws. The
// snapshot must be done within the timeout (counted from the freeze's
// start); a snapshot still running then is given up, and removed should it
// appear later, since it was not taken while frozen.
func snapshotFrozen(ctx context.Context, opt *Options, s Snapshotter) (Result, error) {
	timeout := opt.timeout()
	h, err := startHelper(opt.Helper, &spec{FreezeCommand: opt.FreezeCommand, ThawCommand: opt.ThawCommand,
		GuestAgent: opt.GuestAgent, Env: opt.Env, Timeout: timeout})
	if err != nil {
		return Result{}, err
	}
	start := time.Now()
	reply, err := h.ask(ctx, "freeze")
	if err != nil {
		_, terr := h.finish(false)
		return Result{}, errors.Join(err, terr)
	}
	if msg, failed := strings.CutPrefix(reply, "failed "); failed {
		frozen, terr := h.finish(false)
		if terr != nil {
			return Result{}, terr
		}
		opt.log().Info(fmt.Sprintf("freeze failed: %s", msg))
		return Result{Frozen: frozen}, &fallback{reason: "freeze failed: " + msg, err: fmt.Errorf("%w: %s", ErrFreeze, msg)}
	}
	opt.log().Info(fmt.Sprintf("guest frozen in %s", since(start)))
	sctx, cancel := context.WithDeadline(ctx, start.Add(timeout))
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Create(sctx) }()
	var snapErr error
	late := false
	select {
	case snapErr = <-done:
	case <-sctx.Done():
		late = true
	}
	frozen, terr := h.finish(true)
	if late {
		// The engine may not be able to stop (librbd); wait for it, and
		// remove a snapshot that was not taken while frozen.
		if err := <-done; err == nil {
			rctx, rcancel := context.WithTimeout(context.Background(), time.Minute)
			s.Remove(rctx)
			rcancel()
		}
		snapErr = fmt.Errorf("%w: no snapshot within %s of the freeze: %w", ErrTimeout, timeout, sctx.Err())
	}
	if terr != nil {
		if snapErr == nil {
			rctx, rcancel := context.WithTimeout(context.Background(), time.Minute)
			s.Remove(rctx)
			rcancel()
		}
		return Result{}, errors.Join(terr, snapErr)
	}
	if snapErr != nil {
		return Result{Frozen: frozen}, snapErr
	}
	opt.log().Info(fmt.Sprintf("snapshot taken, guest thawed; frozen for %s", frozen.Round(time.Millisecond)))
	return Result{Consistency: Frozen, Frozen: frozen}, nil
}
