// Package raceflag tells tests whether the race detector is on: under it
// sync.Pool drops some of what is put back (allocation counts do not
// hold), and checking runs several times slower.
package raceflag
