// Package nbdserver is the engine of backy-nbd: it serves every revision a
// Catalog knows as a read-only NBD export, so that single files can be pulled
// out of a backup with nbdfuse, qemu-nbd clients or any other NBD client.
//
// The NBD protocol itself is spoken by github.com/pojntfx/go-nbd. That library
// has gaps (no read-only flag, a broken export list, no dynamic export names,
// read errors that kill the connection after a success header, ...), which this
// package closes without forking it: every connection is wrapped in a small
// framing-aware shim that answers some options and commands itself and patches
// the library's replies. docs/nbd.md lists the gaps and what remains.
//
// With COW set, clients may write: writes land in a per-connection sparse
// overlay in a temporary file that is discarded when the client disconnects.
// The export's backing data is never written.
package nbdserver
