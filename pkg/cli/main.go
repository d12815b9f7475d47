package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"syscall"

	"github.com/alecthomas/kong"
	"github.com/posener/complete"

	"github.com/backy/backy/pkg/exitcode"
	"github.com/backy/backy/pkg/logline"
)

// Env is what a command's Run methods receive: the root context and the
// standard streams, so packages never touch os.Stdout directly and tests can
// run commands in-process.
type Env struct {
	Ctx    context.Context
	Stdin  *os.File // a pipe's Read returns once Ctx is done (InterruptibleStdin)
	Stdout *os.File // a pipe's Write returns once Ctx is done (InterruptibleStdout); close it with CloseStdout
	Stderr io.Writer
	Name   string
	Log    *slog.Logger // logline.New(Stderr, Name)

	stdout        *os.File // the process's own stdout, which CloseStdout closes
	releaseStdout func()   // puts stdout's mode back and closes Stdout when it is a duplicate
}

// CloseStdout closes stdout, so that its reader sees the end of the output
// at once. Stdout may be a duplicate of fd 1 (InterruptibleStdout), whose
// Close alone would leave the pipe open until the process exits: fd 1 is
// closed too, after the duplicate's mode was put back.
func (e *Env) CloseStdout() error {
	if e.releaseStdout == nil || e.stdout == nil {
		return e.Stdout.Close()
	}
	e.releaseStdout()
	return e.stdout.Close()
}

// VersionFlag prints the version and exits 0.
type VersionFlag bool

// BeforeReset prints the version as soon as kong sees the flag.
func (v VersionFlag) BeforeReset(app *kong.Kong, vars kong.Vars) error {
	fmt.Fprintf(app.Stdout, "%s %s\n", app.Model.Name, VersionString())
	app.Exit(0)
	return nil
}

// Run parses args into cmd (a kong grammar whose commands have
// Run(*Env) error methods), runs the selected command under a context that
// is cancelled by SIGINT or SIGTERM (which also ends a read of stdin that
// waits for a hung producer, InterruptibleStdin, and a write to stdout that
// waits for a stalled reader, InterruptibleStdout), prints any error as
// "NAME: error: ..." and returns the exit code. A bind of type
// map[string]complete.Predictor is not bound: it names the completers of
// the values tagged predictor:"NAME" when a shell asks for completions
// (COMP_LINE set; see CompletionFlag).
func Run(name, description string, cmd any, args []string, binds ...any) int {
	var preds map[string]complete.Predictor
	binds = slices.DeleteFunc(binds, func(b any) bool {
		p, ok := b.(map[string]complete.Predictor)
		if ok {
			preds = p
		}
		return ok
	})
	exit := -1
	parser, err := kong.New(cmd, kong.Name(name), kong.Description(description),
		kong.UsageOnError(), kong.Writers(os.Stdout, os.Stderr),
		kong.Exit(func(code int) { exit = code; panic(exitPanic{}) }),
		kong.ConfigureHelp(kong.HelpOptions{Compact: true}))
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: error: %v\n", name, err)
		return exitcode.Failure
	}
	if os.Getenv("COMP_LINE") != "" {
		completeLine(parser, preds)
		return exitcode.OK
	}
	kctx, code, done := parse(parser, args, &exit)
	if done {
		return code
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	stdin, restoreStdin := os.Stdin, func() {}
	stdout, restoreStdout := os.Stdout, func() {}
	// Only a command that streams through a pipe makes it non-blocking:
	// O_NONBLOCK is shared with every process holding the pipe (a shell
	// loop reading it, a script writing beside a background server).
	if in, out := streams(kctx); in || out {
		if in {
			GrowPipe(os.Stdin)
			stdin, restoreStdin = InterruptibleStdin(ctx, os.Stdin)
			defer restoreStdin()
		}
		if out {
			GrowPipe(os.Stdout)
			stdout, restoreStdout = InterruptibleStdout(ctx, os.Stdout)
			defer restoreStdout()
		}
	}
	env := &Env{Ctx: ctx, Stdin: stdin, Stdout: stdout, Stderr: os.Stderr, Name: name, Log: logline.New(os.Stderr, name),
		stdout: os.Stdout, releaseStdout: restoreStdout}
	stopProfile := startProfile()
	err = kctx.Run(append([]any{env}, binds...)...)
	stopProfile()
	if err != nil {
		if brokenStdout(err, stdout) {
			// The reader went away (head, a backy-store that failed): end
			// quietly with the status a shell shows for a filter killed by
			// SIGPIPE, 141, as a Unix filter ends.
			return 128 + int(syscall.SIGPIPE)
		}
		if ctx.Err() != nil && !errors.Is(err, context.Canceled) {
			err = fmt.Errorf("%w: %w", context.Canceled, err)
		}
		fmt.Fprintf(os.Stderr, "%s: error: %s\n", name, Message(err))
	}
	return ExitCode(err)
}

// Streamer is a command that streams data through stdin or stdout (an
// extent stream, an image): for it alone Run grows those pipes and makes
// them interruptible (InterruptibleStdin, InterruptibleStdout); the
// standard streams of every other command stay as they were handed over.
type Streamer interface {
	Streams() (stdin, stdout bool)
}

// streams asks the selected command whether it streams.
func streams(kctx *kong.Context) (stdin, stdout bool) {
	target := kctx.Model.Target
	if n := kctx.Selected(); n != nil {
		target = n.Target
	}
	if target.CanAddr() {
		if s, ok := target.Addr().Interface().(Streamer); ok {
			return s.Streams()
		}
	}
	return false, false
}

// brokenStdout reports whether err is a write to stdout that found its
// reader gone (EPIPE).
func brokenStdout(err error, stdout *os.File) bool {
	var pe *fs.PathError
	return errors.As(err, &pe) && pe.Op == "write" && pe.Path == stdout.Name() && errors.Is(pe.Err, syscall.EPIPE)
}

type exitPanic struct{}

// parse runs kong's parser, turning its exits (help, version) and parse
// errors into exit codes.
func parse(p *kong.Kong, args []string, exit *int) (kctx *kong.Context, code int, done bool) {
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(exitPanic); !ok {
				panic(r)
			}
			kctx, code, done = nil, *exit, true
		}
	}()
	kctx, err := p.Parse(args)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: error: %v\n", p.Model.Name, err)
		return nil, exitcode.Usage, true
	}
	return kctx, 0, false
}

// Message renders an error for the one-line diagnostic.
func Message(err error) string {
	if errors.Is(err, context.Canceled) {
		return "interrupted"
	}
	return err.Error()
}
