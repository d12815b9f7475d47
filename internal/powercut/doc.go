// Package powercut is a power-cut simulator for tests: a FUSE file system
// (hanwen/go-fuse) that passes every operation through to a backing
// directory and records each change (create, mkdir, write, truncate,
// rename, unlink, rmdir, fsync, fsyncdir) with its data in an operation log.
//
// From the log it builds the state a power cut after any prefix of the
// operations may leave behind, under the rules a journalling file system
// guarantees and no more:
//
//   - file data (writes, truncations) is durable once the file itself was
//     fsynced afterwards;
//   - a directory entry (create, mkdir, unlink, rmdir) is durable once its
//     directory was fsynced afterwards; a rename once the directory it moves
//     into was fsynced afterwards, and then as a whole (the old name goes
//     with it: a journal commits a rename atomically);
//   - a file or directory whose own entry never became durable is lost with
//     everything under it, however much of it was synced.
//
// Everything else may or may not have reached the disk: the crash state
// variants (Strict, MetaZero, MetaGarbage, Random, Everything) choose how,
// from "nothing that was not made durable" to "every name change happened
// but the unsynced data is zeros or garbage". docs/reliability.md ("The
// power-cut model") compares the model with ext4 and XFS.
//
// A test mounts a Sim over a scratch directory, runs the repository code
// unchanged against the mount point, and either cuts the power live
// (CutAfter: every later operation fails with EIO) or, much cheaper,
// records one whole run and replays prefixes of its log (Log.Crash) into
// fresh directories (State.Materialize). The simulator implements FSYNC and
// FSYNCDIR itself (the kernel turns them into silent successes for a file
// system that answers ENOSYS) and counts them per file (Sim.Fsyncs), so a
// test can prove that the code's fsyncs reach it.
package powercut
