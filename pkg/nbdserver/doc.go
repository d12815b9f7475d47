// Package nbdserver is the engine of backy-nbd: it serves every export a
// Catalog knows (for backy, every revision) over NBD, read-only, so that
// single files can be pulled out of a backup with nbdfuse, qemu clients or
// any other NBD client.
//
// It speaks the protocol itself: the fixed-newstyle handshake with
// NBD_OPT_LIST/INFO/GO, structured replies and the base:allocation
// metadata context, then a transmission loop per connection that serves
// its requests concurrently (a bounded number in flight; replies go out
// whole, one at a time, in the order requests complete, as the protocol
// allows). Only the protocol constants come from
// github.com/pojntfx/go-nbd/pkg/protocol; docs/nbd.md says why its server
// is not used.
//
// A read that fails (a corrupt or missing chunk) is an error reply: no byte
// of it reaches the client and the connection carries on.
//
// With COW set, clients may write: writes land in a per-connection sparse
// overlay in a temporary file that is discarded when the client disconnects.
// The export's backing data is never written.
package nbdserver
