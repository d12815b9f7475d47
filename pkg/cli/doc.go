// Package cli is the plumbing every backy command shares: the mapping of an
// error to its exit code (the codes are pkg/exitcode's), how errors are
// printed, the refusal to write binary data to a terminal, and the version
// string.
package cli
