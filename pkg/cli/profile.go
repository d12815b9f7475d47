package cli

import (
	"os"
	"runtime/pprof"
)

// startProfile writes a CPU profile to the file named by BACKY_CPUPROFILE,
// for finding where a slow backup spends its time; it returns the stop
// function.
func startProfile() func() {
	path := os.Getenv("BACKY_CPUPROFILE")
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err != nil {
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}
