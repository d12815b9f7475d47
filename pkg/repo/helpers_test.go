package repo

import (
	"bytes"
	"os"
)

// revPath is the path of a revision's metadata (".rev") or index (".idx")
// in a directory repository.
func (r *Repo) revPath(id, ext string) string { return r.b.(*dirBackend).revPath(id, ext) }

// readRevisionFile loads and checks the metadata file at path; legacy
// accepts unsealed metadata (a repository of format 1).
func readRevisionFile(path, id string, legacy bool) (*Revision, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return decodeRevision(b, path, id, legacy)
}

// testChunk is a chunk of its own for each seed, and its hash.
func testChunk(seed byte) ([]byte, Hash) {
	data := bytes.Repeat([]byte{seed, seed + 1, 'x'}, ChunkSize/3+1)[:ChunkSize]
	return data, HashChunk(data)
}
