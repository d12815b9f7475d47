package main

import (
	"os"
	"strings"
	"testing"

	"github.com/alecthomas/kong"
)

// TestManPageCoversTheModel checks that every subcommand of the kong model
// has a section in man/backy-store.1.md and every long flag appears there.
func TestManPageCoversTheModel(t *testing.T) {
	page, err := os.ReadFile("../../man/backy-store.1.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(page)
	parser, err := kong.New(&storeCLI{}, kong.Name("backy-store"))
	if err != nil {
		t.Fatal(err)
	}
	for _, section := range []string{"# NAME", "# SYNOPSIS", "# DESCRIPTION", "# COMMANDS", "# EXIT STATUS", "# EXAMPLES", "# SEE ALSO"} {
		if !strings.Contains(text, "\n"+section+"\n") {
			t.Errorf("man page lacks section %q", section)
		}
	}
	flags := 0
	var walk func(n *kong.Node)
	walk = func(n *kong.Node) {
		if n.Type == kong.CommandNode && !strings.Contains(text, "\n## "+n.Name) {
			t.Errorf("man page has no section for command %q", n.Name)
		}
		for _, f := range n.Flags {
			flags++
			if !strings.Contains(text, "**--"+f.Name+"**") {
				t.Errorf("man page does not mention --%s (command %q)", f.Name, n.Name)
			}
		}
		for _, c := range n.Children {
			walk(c)
		}
	}
	walk(parser.Model.Node)
	if flags < 15 {
		t.Fatalf("found only %d flags: the walk is broken", flags)
	}
	for _, code := range []string{"0", "1", "2", "3", "4", "5", "6", "7", "130"} {
		if !strings.Contains(text, "\n| "+code+" | ") {
			t.Errorf("exit status table lacks %s", code)
		}
	}
}
