package doccheck

import (
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/backy/backy/"

var layerRowRe = regexp.MustCompile("(?m)^\\| (\\d+) \\| `([^`]+)` \\|")

// layerOf returns the layer docs/HACKING.md gives a package (a path
// relative to the module), and whether it gives one.
func layerOf(layers map[string]int, pkg string) (int, bool) {
	if l, ok := layers[pkg]; ok {
		return l, true
	}
	if strings.HasPrefix(pkg, "cmd/") {
		l, ok := layers["cmd/backy-*"]
		return l, ok
	}
	return 0, false
}

// testHelper tells the packages that stand outside the layers: only tests
// and other test helpers import them.
func testHelper(pkg string) bool {
	return strings.HasPrefix(pkg, "internal/") || strings.HasPrefix(pkg, "test/") ||
		strings.Contains(pkg, "/internal/") || strings.HasSuffix(pkg, "test")
}

// TestLayers enforces docs/HACKING.md's layer table on the imports of every
// package's non-test files: imports go to lower layers only, only cmd/
// imports pkg/cli, no test helper is linked into a command, and every
// package under pkg/ has its row.
func TestLayers(t *testing.T) {
	doc, err := os.ReadFile("../../docs/HACKING.md")
	if err != nil {
		t.Fatal(err)
	}
	layers := map[string]int{}
	for _, m := range layerRowRe.FindAllStringSubmatch(string(doc), -1) {
		layers[m[2]], _ = strconv.Atoi(m[1])
	}
	if len(layers) < 10 {
		t.Fatalf("found %d rows in docs/HACKING.md's layer table", len(layers))
	}
	cmd := exec.Command("go", "list", "-tags", "librbd,pacific", "-f", "{{.ImportPath}} {{join .Imports \" \"}}", "./...")
	cmd.Dir = "../.."
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	checked := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		pkg := strings.TrimPrefix(f[0], module)
		if testHelper(pkg) || !strings.HasPrefix(pkg, "pkg/") && !strings.HasPrefix(pkg, "cmd/") {
			continue // scripts/ and test helpers stand outside the layers
		}
		l, ok := layerOf(layers, pkg)
		if !ok {
			t.Errorf("%s is not in docs/HACKING.md's layer table: add a row in the layer it belongs to", pkg)
			continue
		}
		for _, imp := range f[1:] {
			if !strings.HasPrefix(imp, module) {
				continue
			}
			imp = strings.TrimPrefix(imp, module)
			checked++
			if testHelper(imp) {
				t.Errorf("%s imports the test helper %s", pkg, imp)
				continue
			}
			if imp == "pkg/cli" && !strings.HasPrefix(pkg, "cmd/") {
				t.Errorf("%s imports pkg/cli: only commands do", pkg)
			}
			if il, ok := layerOf(layers, imp); !ok || il >= l {
				t.Errorf("%s (layer %d) imports %s (layer %d, listed %v): imports go down only", pkg, l, imp, il, ok)
			}
		}
	}
	if checked < 50 {
		t.Errorf("checked only %d imports", checked)
	}
}
