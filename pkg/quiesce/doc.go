// Package quiesce makes snapshots consistent: it freezes the guest's file
// systems around a snapshot (freeze and thaw commands, or the QEMU guest
// agent over its socket), or asks an external agent to make the snapshot
// itself, and says how consistent the snapshot it got is (Frozen, Agent or
// Crash, with the reason of a fallback and how long the guest was frozen).
//
// A guest must never stay frozen because backy died. The freeze and the
// thaw are therefore done by a helper process started in a session of its
// own (setsid), so that the daemon ending a run's whole process group, or a
// SIGKILL of the process that asked for the freeze, cannot reach it. The
// helper talks to its parent through two pipes. It keeps its own deadline,
// the start of the freeze plus the timeout: it begins the thaw when told,
// at once when the pipe from the parent closes before that (the parent
// died), and at the deadline whatever the parent does (a stopped parent);
// the parent gives up its snapshot at a deadline of its own that comes
// first. The guest is thawed when the thaw returns. A thaw that fails or
// hangs is retried; when every attempt fails the run fails and the helper
// and the parent both say so loudly.
//
// The helper is the calling program itself, started again with the
// environment variable HelperEnv set: a program that uses Snapshot with a
// freezing method calls HelperMain first thing in main when HelperEnv is
// set (backy-extract does).
package quiesce
