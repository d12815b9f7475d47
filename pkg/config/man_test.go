package config

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestManPageDocumentsEveryKey keeps man/backy.conf.5.md in step with the
// parser: every key it accepts must have an entry ("**key** = ...") there,
// and every source type must be named.
func TestManPageDocumentsEveryKey(t *testing.T) {
	data, err := os.ReadFile("../../man/backy.conf.5.md")
	if err != nil {
		t.Fatal(err)
	}
	page := string(data)
	for _, k := range knownKeys() {
		leaf := k[strings.LastIndex(k, ".")+1:]
		entry := regexp.MustCompile(`(?m)^\*\*` + regexp.QuoteMeta(leaf) + `\*\* = `)
		if !entry.MatchString(page) {
			t.Errorf("key %s has no entry \"**%s** = ...\" in the man page", k, leaf)
		}
	}
	for _, typ := range sourceTypes() {
		if !strings.Contains(page, `**"`+string(typ)+`"**`) {
			t.Errorf("source type %q is not in the man page", typ)
		}
	}
	for _, table := range []string{"**[global]**", "**[schedules.**_NAME_**]**", "**[jobs.**_NAME_**]**"} {
		if !strings.Contains(page, table) {
			t.Errorf("table %s is not in the man page", table)
		}
	}
	for _, section := range []string{"# NAME", "# SYNOPSIS", "# DESCRIPTION", "# EXAMPLES", "# SEE ALSO"} {
		if !strings.Contains(page, "\n"+section+"\n") {
			t.Errorf("section %q is missing", section)
		}
	}
}

// TestManPageExampleParses keeps the EXAMPLES section valid.
func TestManPageExampleParses(t *testing.T) {
	data, err := os.ReadFile("../../man/backy.conf.5.md")
	if err != nil {
		t.Fatal(err)
	}
	page := string(data)
	examples := page[strings.Index(page, "\n# EXAMPLES\n"):]
	for i, block := range regexp.MustCompile("(?s)```\n(.*?)```").FindAllStringSubmatch(examples, -1) {
		if _, err := Parse("example", []byte(block[1])); err != nil {
			t.Errorf("example %d: %v", i, err)
		}
	}
	synopsis := page[strings.Index(page, "\n# SYNOPSIS\n"):strings.Index(page, "\n# DESCRIPTION\n")]
	block := regexp.MustCompile("(?s)```\n(.*?)```").FindStringSubmatch(synopsis)
	if block == nil {
		t.Fatal("no example in SYNOPSIS")
	}
	if _, err := Parse("synopsis", []byte(block[1])); err != nil {
		t.Errorf("synopsis: %v", err)
	}
}
