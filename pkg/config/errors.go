package config

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"

	"github.com/backy/backy/pkg/exitcode"
)

// ErrInvalid is matched by every error about the content of a configuration
// file; callers map it to the "bad input" exit code. The other sentinels say
// what kind of problem it is.
var ErrInvalid = exitcode.New(exitcode.BadInput, "config: invalid configuration")

// Kinds of configuration problems, matched with errors.Is.
var (
	ErrSyntax         = exitcode.New(exitcode.BadInput, "config: syntax error")
	ErrUnknownKey     = exitcode.New(exitcode.BadInput, "config: unknown key")
	ErrMissingKey     = exitcode.New(exitcode.BadInput, "config: missing key")
	ErrBadValue       = exitcode.New(exitcode.BadInput, "config: bad value")
	ErrDuplicate      = exitcode.New(exitcode.BadInput, "config: duplicate definition")
	ErrNoSuchSchedule = exitcode.New(exitcode.BadInput, "config: no such schedule")
	ErrSourceMissing  = exitcode.New(exitcode.NotFound, "config: source missing")
)

// Error is one problem in a configuration file.
type Error struct {
	File string
	Line int    // 1-based; 0 when the position is not known
	Key  string // the dotted TOML key concerned, if any
	Kind error  // one of the sentinels above
	Msg  string // what is wrong, naming the key
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("config: ")
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	b.WriteString(": ")
	b.WriteString(oneLine(e.Msg))
	return b.String()
}

// oneLine escapes control characters, which the TOML parser quotes from the
// input as they are, so that a problem always prints as one line.
func oneLine(s string) string {
	if !strings.ContainsFunc(s, unicode.IsControl) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if unicode.IsControl(r) {
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// Unwrap makes errors.Is match both ErrInvalid and the problem's kind.
func (e *Error) Unwrap() []error { return []error{ErrInvalid, e.Kind} }

// List is every problem found in one file, in the order of their lines. Its
// message is the first problem and a count of the others, so that it stays
// one line; range over the list to report them all.
type List []*Error

func (l List) Error() string {
	switch len(l) {
	case 0:
		return "config: no problems"
	case 1:
		return l[0].Error()
	case 2:
		return l[0].Error() + " (and 1 more problem)"
	}
	return fmt.Sprintf("%s (and %d more problems)", l[0].Error(), len(l)-1)
}

// Unwrap exposes every problem to errors.Is and errors.As.
func (l List) Unwrap() []error {
	errs := make([]error, len(l))
	for i, e := range l {
		errs[i] = e
	}
	return errs
}
