package daemon

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func runPipeline(t *testing.T, ctx context.Context, p pipeline) (string, string, error) {
	t.Helper()
	log, err := os.Create(filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	r := &procRunner{env: os.Environ(), killDelay: 2 * time.Second}
	out, err := r.run(ctx, p, log)
	b, _ := os.ReadFile(log.Name())
	return string(out), string(b), err
}

func TestPipelinePassesDataAndCapturesStdout(t *testing.T) {
	out, log, err := runPipeline(t, context.Background(), pipeline{
		{"/bin/sh", "-c", "echo hello; echo to-log >&2"}, {"tr", "a-z", "A-Z"},
	})
	if err != nil || out != "HELLO\n" || !strings.Contains(log, "to-log") || !strings.Contains(log, "HELLO") {
		t.Fatalf("out %q, log %q, err %v", out, log, err)
	}
}

func TestPipelineReportsEverySide(t *testing.T) {
	// The reader fails although the writer succeeds, and the other way
	// round: neither may hide behind the other.
	for _, tc := range []struct {
		p    pipeline
		want string
	}{
		{pipeline{{"/bin/sh", "-c", "echo x; exit 3"}, {"cat"}}, "sh exited 3"},
		{pipeline{{"echo", "x"}, {"/bin/sh", "-c", "cat >/dev/null; exit 4"}}, "sh exited 4"},
		{pipeline{{"/bin/sh", "-c", "exit 5"}, {"/bin/sh", "-c", "exit 6"}}, "sh exited 5, sh exited 6"},
		{pipeline{{"/nonexistent/backy-extract"}, {"cat"}}, "backy-extract: fork/exec /nonexistent/backy-extract: no such file or directory"},
	} {
		_, _, err := runPipeline(t, context.Background(), tc.p)
		var se *StageError
		if !errors.As(err, &se) || !errors.Is(err, ErrStage) || err.Error() != tc.want {
			t.Errorf("%s: error %v, want %q", tc.p, err, tc.want)
		}
	}
}

func TestPipelineCancelKillsWholeProcessGroups(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, cancel)
	start := time.Now()
	// The grandchild sleep holds stdout open: unless its group is
	// signalled too, the pipeline would wait for it for a minute.
	_, _, err := runPipeline(t, ctx, pipeline{{"/bin/sh", "-c", "sleep 60 & wait"}})
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("cancelled pipeline took %s", d)
	}
	if err == nil || !strings.Contains(err.Error(), "killed by SIGTERM") {
		t.Errorf("error %v, want killed by SIGTERM", err)
	}
}

func TestPipelineKillsWhatIgnoresSIGTERM(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, cancel)
	start := time.Now()
	_, _, err := runPipeline(t, ctx, pipeline{{"/bin/sh", "-c", "trap '' TERM; sleep 60 & wait; wait"}})
	if d := time.Since(start); d < 2*time.Second || d > 10*time.Second {
		t.Errorf("took %s, want the 2s kill delay", d)
	}
	if err == nil || !strings.Contains(err.Error(), "SIGKILL") {
		t.Errorf("error %v, want SIGKILL", err)
	}
}

func TestOnlyExit(t *testing.T) {
	busy := &StageError{Failed: []ProcExit{{Name: "backy-store", Code: 5}}}
	if !busy.onlyExit("backy-store", 5) {
		t.Error("busy purge not recognised")
	}
	other := &StageError{Failed: []ProcExit{{Name: "backy-store", Code: 5}, {Name: "sh", Code: 1}}}
	if other.onlyExit("backy-store", 5) {
		t.Error("a second failure was ignored")
	}
}

// A gate that refuses starts no process of the pipeline, and its error is
// the step's; one that allows lets the pipeline run.
func TestPipelineGate(t *testing.T) {
	dir := t.TempDir()
	mark := filepath.Join(dir, "ran")
	p := pipeline{{"touch", mark}, {"cat"}}
	lost := errors.New("lease lost")
	_, log, err := runPipeline(t, withGate(context.Background(), func() error { return lost }), p)
	if err != lost || log != "" {
		t.Fatalf("refusing gate: err %v, log %q; want %v and nothing logged", err, log, lost)
	}
	if _, err := os.Stat(mark); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("refusing gate: a process ran: %v", err)
	}
	if _, _, err := runPipeline(t, withGate(context.Background(), func() error { return nil }), p); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(mark); err != nil {
		t.Fatalf("allowing gate: the pipeline did not run: %v", err)
	}
}
