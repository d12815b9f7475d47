// Command genvectors writes the extent stream test vectors and their
// manifest (vectors.json) into a directory. It is run by
// `go generate ./pkg/extent`; the output is deterministic, and a test checks
// that the committed testdata is what this program makes now.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// ext names vector files; stale files with it are removed on regeneration.
const ext = ".bxs"

func main() {
	dir := flag.String("o", "testdata", "directory to write the vectors to")
	flag.Parse()
	if err := write(*dir); err != nil {
		fmt.Fprintln(os.Stderr, "genvectors: error:", err)
		os.Exit(1)
	}
}

// generate returns every output file by name.
func generate() (map[string][]byte, error) {
	files := map[string][]byte{}
	m := manifest{Comment: manifestComment}
	for _, v := range append(validVectors(), invalidVectors()...) {
		name := v.name + ext
		if _, dup := files[name]; dup {
			return nil, fmt.Errorf("duplicate vector %s", v.name)
		}
		files[name] = v.b.b
		m.Vectors = append(m.Vectors, v.json(name))
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	if err := enc.Encode(m); err != nil {
		return nil, err
	}
	files["vectors.json"] = buf.Bytes()
	return files, nil
}

func (v *vector) json(file string) vectorJSON {
	j := vectorJSON{Name: v.name, File: file, Description: v.desc, Valid: v.err == "",
		Error: v.err, FailsIn: v.failsIn, Records: []recordJSON{}}
	if v.failsIn == "header" {
		return j
	}
	h := v.b.hdr
	j.Header = &headerJSON{Kind: kindName(h.kind), Size: h.size,
		Source: h.source, Snapshot: h.snapshot, Base: h.base}
	if h.flags&1 != 0 {
		j.Header.Consistency = [...]string{1: "crash", 2: "frozen", 3: "agent"}[h.consistency]
		j.Header.FrozenNanos, j.Header.Reason = h.frozen, h.reason
	}
	if j.Valid {
		j.Records = append(j.Records, v.b.records...)
		j.Summary = &summaryJSON{Records: v.b.count, Data: v.b.data, Zero: v.b.zero}
	} else {
		j.Records = append(j.Records, v.b.records[:v.ok]...)
	}
	return j
}

func kindName(k byte) string {
	return map[byte]string{kindFull: "full", kindDifferential: "differential", kindSample: "sample"}[k]
}

// write replaces the vectors in dir with freshly generated ones.
func write(dir string) error {
	files, err := generate()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	old, err := filepath.Glob(filepath.Join(dir, "*"+ext))
	if err != nil {
		return err
	}
	for _, p := range old {
		if _, keep := files[filepath.Base(p)]; !keep {
			if err := os.Remove(p); err != nil {
				return err
			}
		}
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// isOutput reports whether a file in the output directory is one of ours;
// testdata also holds files that are not vectors (fuzz corpora).
func isOutput(name string) bool {
	return strings.HasSuffix(name, ext) || name == "vectors.json"
}
