package nbdserver

import (
	"errors"
	"fmt"
)

// backend adapts an opened Export (and, in COW mode, its overlay) to
// go-nbd's backend.Backend for one connection.
//
// go-nbd writes a read's success header before it calls ReadAt and drops the
// connection if ReadAt fails. So backend never returns an error: it records
// an NBD error number in the session, zeroes the buffer, and reports success;
// the session's reply filter then turns the held-back header into an error
// reply and discards the payload. No byte of a failed read reaches a client.
type backend struct {
	s    *session
	name string
	exp  Export
	size int64
	ov   *overlay // nil unless COW
}

var errOutOfRange = errors.New("nbdserver: request beyond the end of the export")

func (b *backend) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off > b.size || int64(len(p)) > b.size-off {
		b.s.fail(errnoEINVAL, fmt.Errorf("%w: read of %d bytes at %d, size %d", errOutOfRange, len(p), off, b.size))
		clear(p)
		return len(p), nil
	}
	var err error
	if b.ov != nil {
		err = b.ov.ReadAt(p, off)
	} else {
		err = readFull(b.exp, p, off)
	}
	if err != nil {
		clear(p)
		b.s.fail(errnoEIO, fmt.Errorf("nbdserver: export %q: read of %d bytes at %d: %w", b.name, len(p), off, err))
	}
	b.s.stats.reads++
	b.s.stats.readBytes += int64(len(p))
	return len(p), nil
}

func (b *backend) WriteAt(p []byte, off int64) (int, error) {
	switch {
	case b.ov == nil:
		b.s.fail(errnoEPERM, fmt.Errorf("nbdserver: export %q is read-only", b.name))
	case off < 0 || off > b.size || int64(len(p)) > b.size-off:
		b.s.fail(errnoENOSPC, fmt.Errorf("%w: write of %d bytes at %d, size %d", errOutOfRange, len(p), off, b.size))
	default:
		if err := b.ov.WriteAt(p, off); err != nil {
			b.s.fail(errnoEIO, fmt.Errorf("nbdserver: export %q: write of %d bytes at %d: %w", b.name, len(p), off, err))
		}
		b.s.stats.writes++
		b.s.stats.writeBytes += int64(len(p))
	}
	return len(p), nil
}

func (b *backend) Size() (int64, error) { return b.size, nil }

// Sync has nothing to do: the export is read-only and the overlay is thrown
// away at disconnect.
func (b *backend) Sync() error { return nil }
