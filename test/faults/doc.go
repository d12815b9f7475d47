// Package faults is backy's fault suite: Go tests that build the real
// binaries (backy-extract, backy-store, backy-restore) and drive them the
// way an operator's pipelines do, while killing them with SIGKILL, damaging
// repository files, feeding them broken streams, filling the disk under them
// and running them side by side on one repository. docs/reliability.md maps
// every promise of the design to the test here that proves it.
//
// The default run is bounded for CI (a few minutes on two cores);
// BACKY_FAULTS_LONG=1 runs many more kills, mutations and a longer
// concurrency phase.
package faults
