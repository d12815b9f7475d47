package cli

import (
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// GrowPipe enlarges the kernel buffer of f when it is a pipe, so that a
// pipeline such as backy-extract | backy-store moves 4 MiB records in a few
// large steps instead of sixteen 64 KiB ones, with fewer context switches
// between the two processes. It is a hint: errors are ignored.
func GrowPipe(f *os.File) {
	st, err := f.Stat()
	if err != nil || st.Mode()&os.ModeNamedPipe == 0 {
		return
	}
	size := 1 << 20 // the default /proc/sys/fs/pipe-max-size for unprivileged users
	if b, err := os.ReadFile("/proc/sys/fs/pipe-max-size"); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && n > 0 {
			size = min(n, 4<<20)
		}
	}
	_, _ = unix.FcntlInt(f.Fd(), unix.F_SETPIPE_SZ, size)
}
