// Package exitcode is the table of exit codes every backy command shares
// (docs/HACKING.md, the man pages' EXIT STATUS) and the error type whose
// sentinels carry their code. It is a leaf: every package may import it, and
// it imports nothing of backy.
//
// A package declares its sentinels with the code they mean:
//
//	var ErrBusy = exitcode.New(exitcode.Busy, "repo: locked by another process")
//
// and wraps them with %w as any sentinel; pkg/cli finds the code with Of.
package exitcode

// The exit codes.
const (
	OK          = 0
	Failure     = 1 // any error not listed below
	Usage       = 2 // bad command line
	BadInput    = 3 // malformed input: stream, configuration, wrong base
	Damaged     = 4 // the repository is damaged or a verification failed
	Busy        = 5 // locked by another process
	NotFound    = 6 // no such revision, repository, job, file
	NoSpace     = 7 // the disk is full
	ThawFailed  = 8 // every thaw failed: the guest may still be frozen
	Interrupted = 130
)

// Coder is an error that says which exit code it means; it has the shape of
// kong's ExitCoder.
type Coder interface {
	error
	ExitCode() int
}

// Error is a sentinel error carrying its exit code. Compare with errors.Is.
type Error struct {
	code int
	msg  string
}

// New returns a sentinel error with message msg meaning code.
func New(code int, msg string) error { return &Error{code: code, msg: msg} }

func (e *Error) Error() string { return e.msg }

// ExitCode implements Coder.
func (e *Error) ExitCode() int { return e.code }

// With returns err, message unchanged, carrying code: for errors of the
// system (an address in use, say) whose meaning depends on the command.
// Unlike a sentinel's, its code counts even when it is Failure: a missing
// directory can mean a plain failure of the command, not "not found".
func With(code int, err error) error { return &with{err: err, code: code} }

type with struct {
	err  error
	code int
}

func (w *with) Error() string { return w.err.Error() }
func (w *with) Unwrap() error { return w.err }
func (w *with) ExitCode() int { return w.code }

// Of returns the code of the first error in err's tree (depth first, the
// order of errors.As) that carries one other than Failure, and whether there
// is one. Failure is what every error means by default, so a sentinel that
// carries it says nothing more specific than what it wraps: "purge refused:
// corrupt index" is Damaged. An error made by With is the exception: it
// says what the error means here, Failure too.
func Of(err error) (int, bool) {
	if c, ok := err.(Coder); ok {
		if _, pinned := err.(*with); pinned || c.ExitCode() != Failure {
			return c.ExitCode(), true
		}
	}
	switch u := err.(type) {
	case interface{ Unwrap() error }:
		return Of(u.Unwrap())
	case interface{ Unwrap() []error }:
		for _, e := range u.Unwrap() {
			if code, ok := Of(e); ok {
				return code, true
			}
		}
	}
	return 0, false
}
