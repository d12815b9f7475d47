// Command fuzztargets lists every fuzz test of the module except the
// extent reader's (which make fuzz runs longer) as PACKAGE:FuncName lines,
// so a new fuzz target is fuzzed in CI without editing the Makefile.
package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

var fuzzFunc = regexp.MustCompile(`^func (Fuzz\w+)\(f \*testing\.F\)`)

func main() {
	err := filepath.WalkDir(".", func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") && path != ".") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		return scan(path)
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "fuzztargets: error:", err)
		os.Exit(1)
	}
}

func scan(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		m := fuzzFunc.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		pkg := "./" + filepath.Dir(path)
		if pkg == "./pkg/extent" && m[1] == "FuzzReader" {
			continue
		}
		fmt.Printf("%s:%s\n", pkg, m[1])
	}
	return sc.Err()
}
