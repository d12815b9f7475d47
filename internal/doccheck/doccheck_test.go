package doccheck

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/backy/backy/internal/clitest"
)

var (
	flagRe    = regexp.MustCompile(`--[a-z][a-z0-9-]*`)
	commandRe = regexp.MustCompile(`(?m)^  ([a-z][a-z-]*)(?: [^\n]*)?$`)
)

// helpTexts returns the --help output of a command and of each of its
// subcommands.
func helpTexts(t *testing.T, bin string) []string {
	t.Helper()
	root := help(t, bin)
	texts := []string{root}
	if i := strings.Index(root, "\nCommands:\n"); i >= 0 {
		for _, m := range commandRe.FindAllStringSubmatch(root[i:], -1) {
			texts = append(texts, help(t, bin, m[1]))
		}
	}
	return texts
}

func help(t *testing.T, bin string, args ...string) string {
	t.Helper()
	out, err := exec.Command(bin, append(args, "--help")...).Output()
	if err != nil {
		t.Fatalf("%s %v --help: %v", bin, args, err)
	}
	return string(out)
}

func TestEveryFlagIsInItsManPage(t *testing.T) {
	dir, err := clitest.BuildCommands("")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	bins, _ := filepath.Glob(filepath.Join(dir, "backy-*"))
	if len(bins) < 6 {
		t.Fatalf("built %d commands, want 6", len(bins))
	}
	for _, bin := range bins {
		name := filepath.Base(bin)
		page, err := os.ReadFile(filepath.Join("..", "..", "man", name+".1.md"))
		if err != nil {
			t.Errorf("%s has no man page: %v", name, err)
			continue
		}
		// Markdown escapes (\-\-) and bold markers are normalised away.
		text := strings.ReplaceAll(string(page), `\-`, "-")
		for _, h := range helpTexts(t, bin) {
			for _, flag := range flagRe.FindAllString(h, -1) {
				if !strings.Contains(text, flag) {
					t.Errorf("man/%s.1.md does not mention %s", name, flag)
				}
			}
		}
		for _, section := range []string{"# SYNOPSIS", "# DESCRIPTION", "# OPTIONS", "# EXIT STATUS", "# EXAMPLES", "# SEE ALSO"} {
			if !strings.Contains(text, "\n"+section) && !strings.Contains(text, "\n"+strings.Replace(section, "OPTIONS", "COMMANDS", 1)) {
				t.Errorf("man/%s.1.md has no %s section", name, section)
			}
		}
	}
}

func TestStreamManPageCarriesTheSpec(t *testing.T) {
	spec, err := os.ReadFile("../../docs/extent-stream.md")
	if err != nil {
		t.Fatal(err)
	}
	page, err := os.ReadFile("../../man/backy-extent-stream.5.md")
	if err != nil {
		t.Fatal(err)
	}
	body := string(spec[strings.Index(string(spec), "## Overview"):])
	body = regexp.MustCompile(`(?m)^## `).ReplaceAllString(body, "# ")
	if !strings.Contains(string(page), body) {
		t.Fatal("man/backy-extent-stream.5.md differs from docs/extent-stream.md; copy the spec from \"## Overview\" on, with ## headings as #")
	}
}
