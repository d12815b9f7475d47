package quiesce

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/backy/backy/pkg/exitcode"
)

// Consistency says how consistent a snapshot is.
const (
	Frozen = "frozen" // taken while the guest's file systems were frozen
	Agent  = "agent"  // made by an external agent (which freezes on the VM's host)
	Crash  = "crash"  // a plain snapshot: what a power cut would leave
)

// Fallbacks: what happens when the consistent way fails.
const (
	FallbackCrash = "crash" // take a plain snapshot and record why
	FallbackFail  = "fail"  // fail the run
)

// Defaults.
const (
	DefaultFreezeTimeout = 60 * time.Second // freeze + snapshot, the longest a guest stays frozen
	DefaultAgentTimeout  = 90 * time.Second // how long to wait for an agent's snapshot
)

// Errors of this package.
var (
	ErrBadOptions = exitcode.New(exitcode.Usage, "quiesce: bad options")
	ErrFreeze     = exitcode.New(exitcode.Failure, "quiesce: freeze failed")
	ErrNoSnapshot = exitcode.New(exitcode.Failure, "quiesce: the agent made no snapshot")
	// ErrThaw means the guest may still be frozen: every thaw attempt failed.
	// It has an exit code of its own, which backy-schedule tells apart.
	ErrThaw = exitcode.New(exitcode.ThawFailed, "quiesce: THAW FAILED, THE GUEST MAY STILL BE FROZEN")
	// ErrTimeout is a step that took longer than the timeout.
	ErrTimeout = exitcode.New(exitcode.Failure, "quiesce: timed out")
)

// Options say how to make a snapshot consistent. At most one way is set:
// FreezeCommand and ThawCommand together, SnapshotCommand, or GuestAgent;
// none means a plain (crash-consistent) snapshot.
type Options struct {
	FreezeCommand   string // sh command freezing the guest
	ThawCommand     string // sh command thawing it
	SnapshotCommand string // sh command asking an agent to make the snapshot
	GuestAgent      string // Unix socket of the QEMU guest agent
	// Timeout bounds the freeze and the snapshot together (the longest the
	// guest stays frozen; each thaw attempt gets as long again), or the
	// wait for an agent's snapshot. 0 means the default of the method.
	Timeout  time.Duration
	Fallback string   // FallbackCrash ("" too) or FallbackFail
	Env      []string // NAME=VALUE added to the commands' environment
	// Helper is the command line that starts the helper (the program
	// itself, see HelperMain); default: this executable.
	Helper []string
	// Poll is how often Exists is asked while waiting for an agent's
	// snapshot; default 1 s.
	Poll time.Duration
	Log  *slog.Logger `json:"-"` // nil: nothing is logged
}

// Method names the way Options make a snapshot consistent: "freeze",
// "guest-agent", "agent" or "" (none).
func (o *Options) Method() string {
	switch {
	case o.GuestAgent != "":
		return "guest-agent"
	case o.SnapshotCommand != "":
		return "agent"
	case o.FreezeCommand != "" || o.ThawCommand != "":
		return "freeze"
	}
	return ""
}

// Check reports options that do not go together.
func (o *Options) Check() error {
	n := 0
	if o.FreezeCommand != "" || o.ThawCommand != "" {
		n++
		if o.FreezeCommand == "" || o.ThawCommand == "" {
			return fmt.Errorf("%w: a freeze command needs a thaw command and the other way round", ErrBadOptions)
		}
	}
	if o.SnapshotCommand != "" {
		n++
	}
	if o.GuestAgent != "" {
		n++
	}
	switch {
	case n > 1:
		return fmt.Errorf("%w: choose one of freeze/thaw commands, a snapshot command or the guest agent", ErrBadOptions)
	case n == 0 && (o.Timeout != 0 || o.Fallback == FallbackFail):
		// accepted and ignored, they would promise what no run keeps
		return fmt.Errorf("%w: a consistency timeout or fallback needs a way to a consistent snapshot: freeze/thaw commands, a snapshot command or the guest agent", ErrBadOptions)
	case o.Fallback != "" && o.Fallback != FallbackCrash && o.Fallback != FallbackFail:
		return fmt.Errorf("%w: fallback %q: want %q or %q", ErrBadOptions, o.Fallback, FallbackCrash, FallbackFail)
	case o.Timeout < 0:
		return fmt.Errorf("%w: negative timeout", ErrBadOptions)
	}
	return nil
}

func (o *Options) timeout() time.Duration {
	switch {
	case o.Timeout > 0:
		return o.Timeout
	case o.SnapshotCommand != "":
		return DefaultAgentTimeout
	}
	return DefaultFreezeTimeout
}

func (o *Options) log() *slog.Logger {
	if o.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return o.Log
}

// Snapshotter makes, finds and removes the one snapshot a run is about.
type Snapshotter interface {
	Create(ctx context.Context) error
	Exists(ctx context.Context) (bool, error)
	Remove(ctx context.Context) error
}

// Result says how consistent the snapshot is.
type Result struct {
	Consistency string        // Frozen, Agent or Crash
	Reason      string        // why a fallback to Crash happened (or a late snapshot was adopted)
	Frozen      time.Duration // from the start of the freeze to the end of the thaw
}

// Snapshot makes the snapshot the way opt says and reports how consistent
// it is. On error no snapshot made by this call is left behind, except
// one an agent makes after Snapshot returned (see snapshotByAgent).
func Snapshot(ctx context.Context, opt Options, s Snapshotter) (Result, error) {
	if err := opt.Check(); err != nil {
		return Result{}, err
	}
	var res Result
	var err error
	switch opt.Method() {
	case "":
		return Result{Consistency: Crash}, s.Create(ctx)
	case "agent":
		res, err = snapshotByAgent(ctx, &opt, s)
	default:
		res, err = snapshotFrozen(ctx, &opt, s)
	}
	var fb *fallback
	if !errors.As(err, &fb) {
		return res, err
	}
	if opt.Fallback == FallbackFail {
		return res, fb.err
	}
	opt.log().Info(fmt.Sprintf("falling back to a crash-consistent snapshot: %s", fb.reason))
	if err := s.Create(ctx); err != nil {
		if ok, _ := s.Exists(ctx); ok && opt.Method() == "agent" {
			opt.log().Info("the agent's snapshot appeared after all: adopted")
			return Result{Consistency: Agent, Reason: "adopted: snapshot appeared after the wait (" + fb.reason + ")"}, nil
		}
		return res, err
	}
	return Result{Consistency: Crash, Reason: fb.reason, Frozen: res.Frozen}, nil
}

// fallback is the error of a consistent way that failed in a way a plain
// snapshot can make up for.
type fallback struct {
	reason string
	err    error
}

func (f *fallback) Error() string { return f.err.Error() }
func (f *fallback) Unwrap() error { return f.err }

func fallbackf(sentinel error, format string, args ...any) *fallback {
	reason := fmt.Sprintf(format, args...)
	return &fallback{reason: reason, err: fmt.Errorf("%w: %s", sentinel, reason)}
}

// oneLine shortens a message (a command's stderr) to one line for records.
func oneLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s
}
