package clitest

import (
	"bytes"
	"os"
	"os/signal"
	"syscall"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
)

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){"recwriter": recwriter})
}

// recwriter writes records of 3000 bytes to stdout for ever and exits 130
// on SIGTERM. Records that do not fill pages leave every page of a pipe
// part-filled: full, it holds 16 x 3000 bytes, not its 65536.
func recwriter() {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM)
	go func() {
		<-sig
		os.Exit(130)
	}()
	rec := bytes.Repeat([]byte{'r'}, 3000)
	for {
		if _, err := os.Stdout.Write(rec); err != nil {
			os.Exit(1)
		}
	}
}

// TestStallout checks stallout itself: it must see a pipe full of small
// records as full (a count of the bytes in it against its size did not,
// and failed after InterruptWait).
func TestStallout(t *testing.T) {
	Run(t, Params("testdata/stall", t.TempDir()))
}
