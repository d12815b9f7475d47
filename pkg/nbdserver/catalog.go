package nbdserver

import (
	"io"

	"github.com/backy/backy/pkg/exitcode"
)

// ErrNotFound is what Catalog.Open wraps when no export has the requested
// name; the client is told the export is unknown.
var ErrNotFound = exitcode.New(exitcode.Failure, "nbdserver: no such export")

// ExportInfo names one export in the list a client asks for with
// NBD_OPT_LIST (nbdinfo --list).
type ExportInfo struct {
	Name        string // the canonical name, a revision id
	Description string // free text, shown by nbdinfo
}

// Catalog resolves export names to exports. The server calls it from many
// connections at once, so it must be safe for concurrent use.
type Catalog interface {
	// List returns every export, for NBD_OPT_LIST.
	List() ([]ExportInfo, error)
	// Open resolves a name as a client typed it (a revision spec such as
	// "latest", a tag or an id prefix; the empty string is the client's
	// default export) and opens it. An unknown name returns an error
	// wrapping ErrNotFound. The server opens an export once per connection
	// and closes it when the connection ends.
	Open(name string) (Export, error)
}

// Export is one opened revision image.
type Export interface {
	// ReadAt returns verified data: a corrupt or missing chunk must be an
	// error, never wrong bytes. The requests of a connection are served
	// concurrently, so it is called from several goroutines at once.
	io.ReaderAt
	// Size is the image size in bytes.
	Size() int64
	Close() error
}

// Canonical is optionally implemented by an Export that has a name which
// always opens the same bytes (for a repository: the revision id, or ID/pN
// for a partition), while the name the client typed may be one that moves
// ("latest", a tag, N, an id prefix). The server sends that name back in
// NBD_INFO_NAME and advertises multi-connection consistency
// (NBD_FLAG_CAN_MULTI_CONN) only to a client that asked for it by exactly
// that name: each connection resolves its name on its own, so the
// connections of one client asking for "latest" may get different
// revisions when one is stored between them, and a client that splits its
// reads across them (nbdcopy, nbdfuse) would mix the two silently. An
// Export without it never gets multi-conn.
type Canonical interface {
	CanonicalName() string
}

// Describer is optionally implemented by an Export to give the description
// sent in reply to NBD_OPT_INFO and NBD_OPT_GO.
type Describer interface {
	Description() string
}

// Mapper is optionally implemented by an Export that knows, without reading
// them, which ranges read as zeros (for a repository: its zero chunks). The
// server then offers the base:allocation metadata context, so clients such
// as nbdcopy and qemu-img ask for the map (NBD_CMD_BLOCK_STATUS) and skip
// the zero ranges instead of reading them.
type Mapper interface {
	// Extent reports whether the bytes from off on read as zeros, and
	// for how many bytes (at least 1, at most max) that stays so. off is
	// inside the export.
	Extent(off, max int64) (zero bool, n int64)
}
