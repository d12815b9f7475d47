// Package logline is backy's one log format, as a log/slog handler: one
// line per record, "NAME: msg key=value ...". The commands print their
// notes with it ("backy-store: revision ..."), the daemon its log with a
// timestamp in front instead of a name.
package logline

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// New is the logger of a command or helper: one line per record on w,
// "NAME: msg", then the attributes as " key=value"; a warning reads
// "NAME: warning: msg", an error "NAME: error: msg". Debug records are
// dropped. w may be a progress display, which keeps the lines above its bar.
func New(w io.Writer, name string) *slog.Logger {
	return slog.New(&handler{w: w, prefix: name + ": ", mu: new(sync.Mutex)})
}

// Timed is New with the record's local time in layout in front, and the
// name after it unless empty: "2006-01-02 15:04:05 NAME: msg", or
// "2006-01-02 15:04:05 msg".
func Timed(w io.Writer, layout, name string) *slog.Logger {
	h := &handler{w: w, layout: layout, mu: new(sync.Mutex)}
	if name != "" {
		h.prefix = name + ": "
	}
	return slog.New(h)
}

type handler struct {
	w      io.Writer
	prefix string
	layout string // of the time in front, or none
	attrs  string // " key=value" of With
	mu     *sync.Mutex
}

func (h *handler) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelInfo }

func (h *handler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	if h.layout != "" {
		t := r.Time
		if t.IsZero() {
			t = time.Now()
		}
		b.WriteString(t.Format(h.layout) + " ")
	}
	b.WriteString(h.prefix)
	switch {
	case r.Level >= slog.LevelError:
		b.WriteString("error: ")
	case r.Level >= slog.LevelWarn:
		b.WriteString("warning: ")
	}
	b.WriteString(r.Message)
	r.Attrs(func(a slog.Attr) bool {
		writeAttr(&b, a)
		return true
	})
	b.WriteString(h.attrs + "\n")
	h.mu.Lock()
	defer h.mu.Unlock()
	_, err := io.WriteString(h.w, b.String())
	return err
}

func (h *handler) WithAttrs(as []slog.Attr) slog.Handler {
	var b strings.Builder
	for _, a := range as {
		writeAttr(&b, a)
	}
	c := *h
	c.attrs += b.String()
	return &c
}

// WithGroup is ignored: backy's loggers use no groups.
func (h *handler) WithGroup(string) slog.Handler { return h }

func writeAttr(b *strings.Builder, a slog.Attr) {
	if a.Equal(slog.Attr{}) {
		return
	}
	b.WriteString(" " + a.Key + "=" + a.Value.Resolve().String())
}
