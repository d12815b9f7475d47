package logline

import (
	"errors"
	"log/slog"
	"regexp"
	"strings"
	"testing"
)

func TestNew(t *testing.T) {
	var b strings.Builder
	log := New(&b, "backy-x")
	log.Info("revision r1: 2 bad chunks")
	log.Warn("slow", "took", "3s")
	log.With("job", "vm1").Error("failed", "err", errors.New("boom"))
	log.Debug("not shown")
	want := "backy-x: revision r1: 2 bad chunks\n" +
		"backy-x: warning: slow took=3s\n" +
		"backy-x: error: failed err=boom job=vm1\n"
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}

func TestTimed(t *testing.T) {
	var b strings.Builder
	Timed(&b, "2006-01-02 15:04:05", "").Info("vm1: run started")
	Timed(&b, "2006-01-02 15:04:05", "backy-schedule").Warn("slow")
	if !regexp.MustCompile(`^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d vm1: run started\n` +
		`\d{4}-\d\d-\d\d \d\d:\d\d:\d\d backy-schedule: warning: slow\n$`).MatchString(b.String()) {
		t.Errorf("got %q", b.String())
	}
	// a zero time (a record made by hand) is stamped now
	b.Reset()
	_ = Timed(&b, "2006", "").Handler().Handle(t.Context(), slog.Record{Message: "x"})
	if !regexp.MustCompile(`^20\d\d x\n$`).MatchString(b.String()) {
		t.Errorf("got %q", b.String())
	}
}
