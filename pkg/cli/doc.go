// Package cli is the plumbing every backy command shares: the one table of
// exit codes, how errors are printed, the refusal to write binary data to a
// terminal, and the version string.
package cli
