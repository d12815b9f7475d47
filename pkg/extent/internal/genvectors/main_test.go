package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestTestdataUpToDate proves the committed vectors are what the generator
// makes now: run `go generate ./pkg/extent` after changing it.
func TestTestdataUpToDate(t *testing.T) {
	want, err := generate()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join("..", "..", "testdata")
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, e := range entries {
		if e.IsDir() || !isOutput(e.Name()) {
			continue
		}
		seen[e.Name()] = true
		got, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if w, ok := want[e.Name()]; !ok {
			t.Errorf("testdata/%s is not made by the generator any more (run go generate ./pkg/extent)", e.Name())
		} else if !bytes.Equal(got, w) {
			t.Errorf("testdata/%s differs from the generator's output (run go generate ./pkg/extent)", e.Name())
		}
	}
	for name := range want {
		if !seen[name] {
			t.Errorf("testdata/%s is missing (run go generate ./pkg/extent)", name)
		}
	}
}

// TestGenerateDeterministic guards against map order or similar creeping
// into the output.
func TestGenerateDeterministic(t *testing.T) {
	a, err := generate()
	if err != nil {
		t.Fatal(err)
	}
	b, err := generate()
	if err != nil {
		t.Fatal(err)
	}
	if len(a) != len(b) {
		t.Fatalf("%d files, then %d", len(a), len(b))
	}
	for name := range a {
		if !bytes.Equal(a[name], b[name]) {
			t.Errorf("%s differs between two runs", name)
		}
	}
}

func TestTestdataSmall(t *testing.T) {
	files, err := generate()
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, b := range files {
		total += len(b)
	}
	if total > 256<<10 {
		t.Errorf("vectors take %d bytes; keep testdata small", total)
	}
}
