package nbdserver

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"syscall"

	"github.com/backy/backy/pkg/exitcode"
)

var (
	// ErrNotSocket is returned by ListenUnix when something other than a
	// socket is in the way; it is left alone.
	ErrNotSocket = exitcode.New(exitcode.Usage, "nbdserver: exists and is not a socket")
	// ErrSocketPath is returned by ListenUnix for a path the kernel cannot
	// bind: Unix socket addresses hold 107 bytes, and the socket is bound
	// in a temporary directory beside it first.
	ErrSocketPath = exitcode.New(exitcode.Usage, "nbdserver: socket path too long")
)

// maxSocketPath is the longest path a Unix socket can be bound at (108
// bytes of sun_path with the terminating NUL); tmpSocketExtra is what the
// temporary directory adds to the socket's directory ("/.nbd" and up to
// ten digits, "/s").
const (
	maxSocketPath  = 107
	tmpSocketExtra = 17
)

// ListenUnix listens on a Unix socket at path that only the owner can
// connect to (mode 0600), and removes it when the listener is closed. The
// socket is made in a private temporary directory beside path, restricted
// and then renamed into place, so it is never reachable with wider
// permissions. A stale socket at path (nothing accepts on it) is replaced;
// a live one is syscall.EADDRINUSE; anything else there is ErrNotSocket.
func ListenUnix(path string) (net.Listener, error) {
	if dir := filepath.Dir(path); len(path) > maxSocketPath || len(dir)+tmpSocketExtra > maxSocketPath {
		return nil, fmt.Errorf("%w: %s (its directory may have at most %d bytes)", ErrSocketPath, path, maxSocketPath-tmpSocketExtra)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != fs.ModeSocket {
			return nil, fmt.Errorf("%w: %s", ErrNotSocket, path)
		}
		if c, err := net.Dial("unix", path); err == nil {
			c.Close()
			return nil, fmt.Errorf("nbdserver: listen on %s: %w", path, syscall.EADDRINUSE)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("nbdserver: %w", err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(path), ".nbd")
	if err != nil {
		return nil, fmt.Errorf("nbdserver: %w", err)
	}
	defer os.RemoveAll(tmp)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: filepath.Join(tmp, "s"), Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("nbdserver: %w", err)
	}
	ln.SetUnlinkOnClose(false)
	if err := os.Chmod(filepath.Join(tmp, "s"), 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("nbdserver: %w", err)
	}
	if err := os.Rename(filepath.Join(tmp, "s"), path); err != nil {
		ln.Close()
		return nil, fmt.Errorf("nbdserver: %w", err)
	}
	return &unixListener{UnixListener: ln, addr: &net.UnixAddr{Name: path, Net: "unix"}}, nil
}

// unixListener reports the socket's final path and removes it on Close.
type unixListener struct {
	*net.UnixListener
	addr *net.UnixAddr
}

func (l *unixListener) Addr() net.Addr { return l.addr }

// Close removes the socket first: Accept returns once the listener is
// closed, and the process may end right then.
func (l *unixListener) Close() error {
	err := os.Remove(l.addr.Name)
	if errors.Is(err, fs.ErrNotExist) {
		err = nil
	}
	return errors.Join(l.UnixListener.Close(), err)
}
