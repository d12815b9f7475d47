// Package rados holds the fault tests of RADOS repositories on the
// throw-away test cluster (pkg/rbd/cephtest): stores, purges and copies of
// several jobs killed with SIGKILL at random moments, and the OSD paused in the
// middle of a store. The tests build the commands with the test's own
// build tags; without "librbd,pacific" they are skipped (there is no RADOS
// backend to test).
package rados
