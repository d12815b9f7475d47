// Package logtest gives tests a *slog.Logger whose lines they can read
// back: the lines a command's logger (pkg/logline) would print,
// without the "NAME: " in front.
package logtest

import (
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/backy/backy/pkg/logline"
)

// Lines collects what a logger from New printed.
type Lines struct {
	mu    sync.Mutex
	lines []string
}

// New returns a logger and the lines it printed.
func New() (*slog.Logger, *Lines) {
	l := new(Lines)
	return logline.New(l, "log"), l
}

// Write takes one line of the logger.
func (l *Lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, strings.TrimSuffix(strings.TrimPrefix(string(p), "log: "), "\n"))
	return len(p), nil
}

// All returns the lines so far.
func (l *Lines) All() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.lines...)
}

// String is the lines so far, joined by newlines.
func (l *Lines) String() string { return strings.Join(l.All(), "\n") }

// T is a logger that writes to the test's log, lines "NAME: msg".
func T(t testing.TB, name string) *slog.Logger { return logline.New(tWriter{t}, name) }

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}
