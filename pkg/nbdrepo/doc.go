// Package nbdrepo serves the revisions of a backy repository to
// pkg/nbdserver: a Catalog with one export per revision, opened by any
// revision spec, whose reads go through verified chunks.
//
// Reads are served from a cache of decompressed, verified chunks that is
// shared by every connection of the server (Options.CacheChunks chunks of
// 4 MiB, 32 = 128 MiB by default). Sharing matters because NBD clients open
// several connections to one export (nbdcopy and nbdfuse open four) and
// revisions share most of their chunks: a per-connection cache would hold
// the same chunk several times and multiply the memory by the number of
// clients. A reader that moves sequentially through an export has the next
// chunks loaded ahead, on other cores, while it is served from the current
// one.
//
// A corrupt or missing chunk makes the read that touches it fail with an
// error naming the chunk, the revision and the offset (the server answers
// EIO); nothing of it is cached, so each later read fails too.
//
// The revision list is read again on every List and Open, so new backups
// appear without a restart; an opened export keeps the index it opened
// with. While a Catalog is open it holds the repository's chunks lock
// shared, so backy-store purge (which takes it exclusive) fails or waits
// and cannot remove a chunk an export still needs; stores, restores and
// verifies run as usual.
package nbdrepo
