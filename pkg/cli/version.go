package cli

import "runtime/debug"

// Version is set at build time with -ldflags "-X github.com/backy/backy/pkg/cli.Version=...".
var Version = ""

// VersionString returns the version the binary was built as.
func VersionString() string {
	if Version != "" {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}
