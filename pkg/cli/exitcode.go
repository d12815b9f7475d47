package cli

import (
	"context"
	"errors"
	"os"
	"syscall"

	"github.com/backy/backy/pkg/config"
	"github.com/backy/backy/pkg/extent"
	"github.com/backy/backy/pkg/rbd"
	"github.com/backy/backy/pkg/rbddiff"
	"github.com/backy/backy/pkg/repo"
	"github.com/backy/backy/pkg/restore"
	"github.com/backy/backy/pkg/schedule"
	"github.com/backy/backy/pkg/source"
	"github.com/backy/backy/pkg/store"
	"github.com/backy/backy/pkg/upkeep"
)

// Exit codes shared by every backy command (docs/HACKING.md, man pages).
const (
	OK          = 0
	Failure     = 1
	Usage       = 2
	BadInput    = 3
	Damaged     = 4
	Busy        = 5
	NotFound    = 6
	NoSpace     = 7
	Interrupted = 130
)

// ErrUsage marks a bad command line.
var ErrUsage = errors.New("usage")

// ErrTerminal is returned when binary output would go to a terminal.
var ErrTerminal = errors.New("refusing to write binary data to a terminal")

// codeOf lists, in order of precedence, which errors map to which code.
// Packages register their sentinels here through Register so this stays the
// one place that decides.
var codeOf = []struct {
	err  error
	code int
}{
	{ErrUsage, Usage},
	{ErrTerminal, Usage},
	{syscall.ENOSPC, NoSpace},
	{syscall.EDQUOT, NoSpace},
	{config.ErrInvalid, BadInput},
	{config.ErrSourceMissing, NotFound},
	{repo.ErrBusy, Busy},
	{repo.ErrNoRevision, NotFound},
	{repo.ErrAmbiguous, NotFound},
	{repo.ErrNotRepository, NotFound},
	{repo.ErrCorruptChunk, Damaged},
	{repo.ErrMissingChunk, Damaged},
	{repo.ErrCorruptIndex, Damaged},
	{repo.ErrCorruptMeta, Damaged},
	{repo.ErrFormat, BadInput},
	{store.ErrNoParent, BadInput},
	{store.ErrWrongBase, BadInput},
	{store.ErrDistrusted, BadInput},
	{store.ErrSampleStream, BadInput},
	{source.ErrNotImage, BadInput},
	{source.ErrShrunk, BadInput},
	{source.ErrSizeNeeded, Usage},
	{source.ErrSizeMismatch, BadInput},
	{restore.ErrTargetTooSmall, BadInput},
	{rbd.ErrNotFound, NotFound},
	{rbd.ErrBadName, Usage},
	{rbd.ErrNoLibrbd, Usage},
	{rbd.ErrDiffMismatch, BadInput},
	{rbddiff.ErrBadMagic, BadInput},
	{rbddiff.ErrBadTag, BadInput},
	{rbddiff.ErrBadRecord, BadInput},
	{rbddiff.ErrTooLong, BadInput},
	{rbddiff.ErrOutOfRange, BadInput},
	{rbddiff.ErrOrder, BadInput},
	{rbddiff.ErrTrailing, BadInput},
	{upkeep.ErrDamaged, Damaged},
	{upkeep.ErrMismatch, Damaged},
	{upkeep.ErrNoMatch, NotFound},
	{upkeep.ErrNoJob, NotFound},
	{upkeep.ErrBadDate, Usage},
	{upkeep.ErrBadSchedule, Usage},
	{upkeep.ErrNewest, Usage},
	{upkeep.ErrSelection, Usage},
	{upkeep.ErrStreamKind, BadInput},
	{upkeep.ErrTimeout, Failure}, // nothing was shown damaged, but nothing passed
	{schedule.ErrBadTag, Usage},
	{schedule.ErrBadRule, Usage},
	{schedule.ErrBadDuration, Usage},
	{os.ErrNotExist, NotFound},
}

// Register adds sentinel errors that map to code. It is called from init
// functions of the command-side glue, never concurrently with ExitCode.
func Register(code int, errs ...error) {
	for _, e := range errs {
		codeOf = append(codeOf, struct {
			err  error
			code int
		}{e, code})
	}
}

// ExitCode maps an error to the exit code table.
func ExitCode(err error) int {
	if err == nil {
		return OK
	}
	if errors.Is(err, context.Canceled) {
		return Interrupted
	}
	for _, c := range codeOf {
		if errors.Is(err, c.err) {
			return c.code
		}
	}
	if extent.IsInvalid(err) {
		return BadInput
	}
	return Failure
}
