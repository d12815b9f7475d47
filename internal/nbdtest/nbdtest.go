// Package nbdtest holds what the real-client tests of backy-nbd need to
// drive NBD clients: running a client with a time limit, reading back the
// hex dumps of qemu-io, and mounting an export with nbdfuse.
package nbdtest

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Run runs a client for at most 90 s and returns its stdout; its stderr is
// in the error.
func Run(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s %s: %w: %s", filepath.Base(name), strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// MustRun is Run that fails the test on error.
func MustRun(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := Run(name, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// dumpLine matches a line of the hex dump of qemu-io "read -v".
var dumpLine = regexp.MustCompile(`(?m)^([0-9a-f]{8}):  ((?:[0-9a-f]{2} )+) `)

// QemuIODump parses the hex dumps of qemu-io "read -v" into offset -> byte.
func QemuIODump(out string) map[int64]byte {
	got := map[int64]byte{}
	for _, m := range dumpLine.FindAllStringSubmatch(out, -1) {
		off, _ := strconv.ParseInt(m[1], 16, 64)
		for i, h := range strings.Fields(m[2]) {
			b, _ := strconv.ParseUint(h, 16, 8)
			got[off+int64(i)] = byte(b)
		}
	}
	return got
}

// CheckDump compares the dumped bytes of [off, off+n) with want[off:].
func CheckDump(t testing.TB, what string, got map[int64]byte, off, n int64, want []byte) {
	t.Helper()
	for i := off; i < off+n; i++ {
		b, ok := got[i]
		if !ok {
			t.Fatalf("%s: byte %d missing from qemu-io output", what, i)
		}
		if b != want[i] {
			t.Fatalf("%s: byte %d is %#x, want %#x", what, i, b, want[i])
		}
	}
}
