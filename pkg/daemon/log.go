package daemon

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"github.com/backy/backy/pkg/exitcode"
	"github.com/backy/backy/pkg/fsperm"
	"github.com/backy/backy/pkg/logline"
)

// logTime is the timestamp of log lines: local time, as operators read it
// next to their other logs.
const logTime = "2006-01-02 15:04:05"

// Logger is the daemon's own log, a *slog.Logger in pkg/logline's format
// with the local time in front ("2006-01-02 15:04:05 msg"), writing to a
// file that can be reopened after logrotate moved it (SIGHUP), or to
// stderr.
type Logger struct {
	*slog.Logger
	mu   sync.Mutex
	path string
	w    io.Writer
	f    *os.File
}

// OpenLog opens path for appending; an empty path logs to fallback.
func OpenLog(path string, fallback io.Writer) (*Logger, error) {
	l := &Logger{path: path, w: fallback}
	l.Logger = logline.Timed(l, logTime, "")
	if path == "" {
		return l, nil
	}
	if err := l.Reopen(); err != nil {
		return nil, err
	}
	return l, nil
}

// ErrLogFile is returned when the daemon's own log file (-l) cannot be
// opened: a failure of the daemon, never "not found" (exit 6 is for a
// missing configuration, program or source), whatever the system said.
var ErrLogFile = exitcode.New(exitcode.Failure, "daemon: cannot open the log file")

// Reopen opens the log file again under its name. If that fails the old
// file stays in use, so no line is lost.
func (l *Logger) Reopen() error {
	if l.path == "" {
		return nil
	}
	f, err := openLog(l.path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) && pe.Path == l.path {
			err = pe.Err // the path is in the message already
		}
		return exitcode.With(exitcode.Failure, fmt.Errorf("%w %s: %w", ErrLogFile, l.path, err))
	}
	l.mu.Lock()
	old := l.f
	l.f, l.w = f, f
	l.mu.Unlock()
	if old != nil {
		old.Close()
	}
	return nil
}

// Write writes one line of the log.
func (l *Logger) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// openLog opens a log file for appending, private to the owner or shared
// with the group of its directory (pkg/fsperm), whatever the umask; a log
// an older backy made readable by everyone is closed.
func openLog(path string) (*os.File, error) {
	perm := fsperm.Of(filepath.Dir(path))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, perm.File())
	if err != nil {
		return nil, err
	}
	if err := perm.Restrict(path); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// Close closes the log file, if there is one.
func (l *Logger) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	l.w = io.Discard
	return err
}
