package source

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func mkfifo(t *testing.T) string {
	p := filepath.Join(t.TempDir(), "fifo")
	if err := unix.Mkfifo(p, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// A FIFO is opened without O_NONBLOCK's early EOF: the stream waits for a
// writer that comes late and reads all it writes.
func TestFIFOWriterComesLate(t *testing.T) {
	p := mkfifo(t)
	img := bytes.Repeat([]byte{7}, 5*MiB+3)
	go func() {
		time.Sleep(200 * time.Millisecond)
		if err := os.WriteFile(p, img, 0); err != nil {
			t.Error(err)
		}
	}()
	var out bytes.Buffer
	s, err := File(context.Background(), p, &out, Options{Size: int64(len(img))})
	if err != nil || s.DataBytes != int64(len(img)) {
		t.Fatalf("File = %+v, %v; want %d data bytes", s, err, len(img))
	}
}

// A writer that comes and goes without a byte is an empty input.
func TestFIFOEmptyWriter(t *testing.T) {
	p := mkfifo(t)
	go func() {
		time.Sleep(100 * time.Millisecond)
		if err := os.WriteFile(p, nil, 0); err != nil {
			t.Error(err)
		}
	}()
	_, err := File(context.Background(), p, new(bytes.Buffer), Options{Size: 10})
	if !errors.Is(err, ErrSizeMismatch) {
		t.Fatalf("File: %v, want %v", err, ErrSizeMismatch)
	}
}

// Cancelling ends the wait for a writer that never comes.
func TestFIFONoWriterCancel(t *testing.T) {
	p := mkfifo(t)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { _, err := File(ctx, p, new(bytes.Buffer), Options{Size: 10}); done <- err }()
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("File: %v, want the context's error", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("File still waits for a writer after its context ended")
	}
}
