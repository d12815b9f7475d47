package repo

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"slices"
	"time"
)

// Trust states of a revision.
const (
	Trusted    = "trusted"    // stored and every chunk verified on the way in
	Verified   = "verified"   // trusted, and later checked again (verify, or against the source)
	Distrusted = "distrusted" // damage was found or a person said so: not a base for differential backups
)

// Stats are the figures of the backy-store run that made a revision.
type Stats struct {
	StreamBytes  int64   `json:"stream_bytes"`
	BytesWritten int64   `json:"bytes_written"`
	ChunksNew    int64   `json:"chunks_new"`
	ChunksReused int64   `json:"chunks_reused"`
	ChunksZero   int64   `json:"chunks_zero"`
	Duration     float64 `json:"duration_seconds"`
}

// Revision is the metadata of one revision (revisions/ID.rev).
type Revision struct {
	Format   int       `json:"format"`
	ID       string    `json:"id"`
	Time     time.Time `json:"time"`
	Parent   string    `json:"parent,omitempty"`
	Kind     string    `json:"kind"`
	Tags     []string  `json:"tags"`
	Trust    string    `json:"trust"`
	Source   string    `json:"source,omitempty"`
	Snapshot string    `json:"snapshot,omitempty"`
	Base     string    `json:"base,omitempty"`
	Size     int64     `json:"size"`
	Stats    Stats     `json:"stats"`
	// VerifiedAt is when a verification last passed.
	VerifiedAt *time.Time `json:"verified_at,omitempty"`
	// Damage lists what the last failed verification found.
	Damage []string `json:"damage,omitempty"`
}

// HasTag reports whether the revision carries tag.
func (r *Revision) HasTag(tag string) bool { return slices.Contains(r.Tags, tag) }

// IsDistrusted reports whether the revision must not serve as a base.
func (r *Revision) IsDistrusted() bool { return r.Trust == Distrusted }

// NewRevisionID returns a fresh random id: 16 characters of lower-case
// base32 that always begin with a letter, so an id is never mistaken for
// the N-th-newest spec "N".
func NewRevisionID() string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz234567"
	var r, b [16]byte
	if _, err := rand.Read(r[:]); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	for i := range b {
		b[i] = alphabet[r[i]%32]
	}
	b[0] = alphabet[r[0]%26] // the first 26 are letters
	return string(b[:])
}

func (r *Revision) marshal() ([]byte, error) {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("repo: %w", err)
	}
	return append(b, '\n'), nil
}

// decodeRevision parses metadata read from where; bytes that do not parse,
// or name a different id, are damage.
func decodeRevision(b []byte, where, id string) (*Revision, error) {
	var r Revision
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrCorruptMeta, where, err)
	}
	switch {
	case r.Format != FormatVersion:
		return nil, fmt.Errorf("%w: %s has format %d", ErrFormat, where, r.Format)
	case r.ID != id:
		return nil, fmt.Errorf("%w: %s names revision %q", ErrCorruptMeta, where, r.ID)
	case r.Size < 0 || r.Size > MaxImageSize || r.Time.IsZero():
		return nil, fmt.Errorf("%w: %s: bad size or time", ErrCorruptMeta, where)
	}
	if r.Tags == nil {
		r.Tags = []string{}
	}
	return &r, nil
}

// readRevision loads the metadata of revision id from the backend.
func (r *Repo) readRevision(id string) (*Revision, error) {
	b, err := r.b.ReadMeta(id)
	if err != nil {
		return nil, err
	}
	return decodeRevision(b, r.objName(id, ".rev"), id)
}

// objName names a revision's metadata (ext ".rev") or index (".idx") in
// messages: the file, or the RADOS object.
func (r *Repo) objName(id, ext string) string {
	if d, ok := r.b.(*dirBackend); ok {
		return d.revPath(id, ext)
	}
	return r.b.(interface{ objName(id, ext string) string }).objName(id, ext)
}
