//go:build race

package faults

// raceEnabled: the test binary itself runs under the race detector (as in
// make test), which makes its own checking (zstd decoding of every chunk
// file) several times slower; the crash tests then check chunk files once
// at the end instead of after every kill.
const raceEnabled = true
