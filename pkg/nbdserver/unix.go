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

// ErrNotSocket is returned by ListenUnix when something other than a
// socket is in the way; it is left alone.
var ErrNotSocket = exitcode.New(exitcode.Usage, "nbdserver: exists and is not a socket")

// ListenUnix listens on a Unix socket at path that only the owner can
// connect to (mode 0600), and removes it when the listener is closed. The
// socket is made in a private temporary directory beside path, restricted
// and then renamed into place, so it is never reachable with wider
// permissions. A stale socket at path (nothing accepts on it) is replaced;
// a live one is syscall.EADDRINUSE; anything else there is ErrNotSocket.
func ListenUnix(path string) (net.Listener, error) {
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
