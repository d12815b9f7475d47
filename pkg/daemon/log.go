package daemon

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// logTime is the timestamp of log lines: local time, as operators read it
// next to their other logs.
const logTime = "2006-01-02 15:04:05"

// Logger writes the daemon's own log: to a file that can be reopened after
// logrotate moved it (SIGHUP), or to stderr.
type Logger struct {
	mu   sync.Mutex
	path string
	w    io.Writer
	f    *os.File
}

// OpenLog opens path for appending; an empty path logs to fallback.
func OpenLog(path string, fallback io.Writer) (*Logger, error) {
	l := &Logger{path: path, w: fallback}
	if path == "" {
		return l, nil
	}
	if err := l.Reopen(); err != nil {
		return nil, err
	}
	return l, nil
}

// Reopen opens the log file again under its name. If that fails the old
// file stays in use, so no line is lost.
func (l *Logger) Reopen() error {
	if l.path == "" {
		return nil
	}
	f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("daemon: log file: %w", err)
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

// Printf writes one timestamped line.
func (l *Logger) Printf(format string, args ...any) {
	line := fmt.Sprintf("%s %s\n", time.Now().Format(logTime), fmt.Sprintf(format, args...))
	l.mu.Lock()
	defer l.mu.Unlock()
	io.WriteString(l.w, line)
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
