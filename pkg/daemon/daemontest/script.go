package daemontest

import (
	"os"

	"github.com/rogpeppe/go-internal/testscript"
)

// Cmds are testscript commands for the scripts of backy-schedule and
// backy-check.
func Cmds() map[string]func(ts *testscript.TestScript, neg bool, args []string) {
	return map[string]func(ts *testscript.TestScript, neg bool, args []string){"subst": subst}
}

// subst FILE...: replace $VAR and ${VAR} in each file with the script's
// environment, so configurations in a script can name $WORK (base-dir must
// be absolute).
func subst(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) == 0 {
		ts.Fatalf("usage: subst FILE...")
	}
	for _, f := range args {
		b, err := os.ReadFile(ts.MkAbs(f))
		ts.Check(err)
		ts.Check(os.WriteFile(ts.MkAbs(f), []byte(os.Expand(string(b), ts.Getenv)), 0o644))
	}
}
