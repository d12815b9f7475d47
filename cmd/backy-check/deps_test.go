package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestLinksNoBackupCode keeps the Nagios plugin small and its failure modes
// few: it reads configuration, status file and repository metadata, and must
// not link the packages that move data (issue 15).
func TestLinksNoBackupCode(t *testing.T) {
	for _, tags := range []string{"", "librbd,pacific"} {
		out, err := exec.Command("go", "list", "-tags", tags, "-deps", ".").Output()
		if err != nil {
			t.Fatalf("go list -tags %q -deps: %v", tags, err)
		}
		deps := strings.Fields(string(out))
		if len(deps) < 20 {
			t.Fatalf("go list -deps listed only %v", deps)
		}
		for _, d := range deps {
			for _, banned := range []string{"store", "restore", "source", "rbd", "rbddiff", "nbdserver", "nbdrepo", "daemon", "upkeep"} {
				if d == "github.com/backy/backy/pkg/"+banned || strings.HasPrefix(d, "github.com/backy/backy/pkg/"+banned+"/") {
					t.Errorf("backy-check (tags %q) links %s", tags, d)
				}
			}
		}
	}
}
