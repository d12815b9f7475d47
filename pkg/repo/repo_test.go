package repo

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestOpenOrCreate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new", "repo")
	r, err := OpenOrCreate(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(r.Dir); err != nil {
		t.Fatal(err)
	}
	foreign := t.TempDir()
	os.WriteFile(filepath.Join(foreign, "precious"), []byte("x"), 0o644)
	if _, err := OpenOrCreate(foreign); !errors.Is(err, ErrNotRepository) {
		t.Fatalf("non-empty directory: %v", err)
	}
	if _, err := Open(t.TempDir()); !errors.Is(err, ErrNotRepository) {
		t.Fatalf("empty directory: %v", err)
	}
}

func TestNewerFormatIsRefused(t *testing.T) {
	r, err := OpenOrCreate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(r.Dir, configFile)
	os.WriteFile(p, []byte(`{"format": 2, "chunk_size": 4194304, "hash": "blake3-256", "compression": "zstd"}`), 0o644)
	if _, err := Open(r.Dir); !errors.Is(err, ErrFormat) {
		t.Fatalf("error %v", err)
	}
}

func TestChunkRoundTripAndDamage(t *testing.T) {
	r, err := OpenOrCreate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("backy"), ChunkSize/5+1)[:ChunkSize]
	h := HashChunk(data)
	b, err := r.Chunks.Begin()
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Put(h, Compress(nil, data)); err != nil {
		t.Fatal(err)
	}
	if has, _ := r.Chunks.Has(h); has {
		t.Fatal("chunk visible before commit")
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	got, err := r.ReadChunk(make([]byte, ChunkSize), h)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back: %v", err)
	}
	// Another chunk's content under this name is caught.
	other := HashChunk(bytes.Repeat([]byte{1}, ChunkSize))
	if _, err := Decompress(make([]byte, ChunkSize), other, Compress(nil, data)); !errors.Is(err, ErrCorruptChunk) {
		t.Fatalf("wrong content: %v", err)
	}
	p := r.Chunks.(*dirStore).path(h)
	os.Chmod(p, 0o644)
	os.WriteFile(p, []byte("garbage"), 0o644)
	if _, err := r.ReadChunk(make([]byte, ChunkSize), h); !errors.Is(err, ErrCorruptChunk) {
		t.Fatalf("garbage chunk: %v", err)
	}
	os.Remove(p)
	if _, err := r.ReadChunk(make([]byte, ChunkSize), h); !errors.Is(err, ErrMissingChunk) {
		t.Fatalf("missing chunk: %v", err)
	}
}

func TestLocks(t *testing.T) {
	r, err := OpenOrCreate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	sh1, err := r.TryLock(LockChunks, true)
	if err != nil {
		t.Fatal(err)
	}
	sh2, err := r.TryLock(LockChunks, true)
	if err != nil {
		t.Fatalf("second shared lock: %v", err)
	}
	if _, err := r.TryLock(LockChunks, false); !errors.Is(err, ErrBusy) {
		t.Fatalf("exclusive while shared: %v", err)
	}
	sh1.Unlock()
	sh2.Unlock()
	ex, err := r.TryLock(LockChunks, false)
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.TryLock(LockChunks, true)
	if !errors.Is(err, ErrBusy) || !bytes.Contains([]byte(err.Error()), []byte("by pid")) {
		t.Fatalf("shared while exclusive: %v", err)
	}
	ex.Unlock()
}
