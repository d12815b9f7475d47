package repo

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/zeebo/blake3"
)

// Trust states of a revision.
const (
	Trusted    = "trusted"    // stored: new chunks hashed on the way in, reused ones found present
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
	// IndexSum is "blake3:" and the BLAKE3-256 of the revision's index
	// file, set by Commit: an index that is not the revision's own (a
	// valid index of another revision of the same size in its place) is
	// damage, not the revision. Empty in revisions written before it was
	// recorded, whose index is taken as it is.
	IndexSum string `json:"index_sum,omitempty"`
	Stats    Stats  `json:"stats"`
	// Consistency of the snapshot the revision was read from (as the
	// stream header said): "frozen", "agent" or "crash"; empty when not
	// known (file sources, streams written before it was recorded).
	// ConsistencyReason says why a fallback to "crash" happened;
	// FrozenSeconds is how long the guest was frozen, freeze to thaw.
	Consistency       string  `json:"consistency,omitempty"`
	ConsistencyReason string  `json:"consistency_reason,omitempty"`
	FrozenSeconds     float64 `json:"frozen_seconds,omitempty"`
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

// Sealed metadata (docs/repository.md, "Revision metadata"): the file is
// the indented JSON of the revision with one more member, last, whose value
// is the BLAKE3-256 of every other byte of the file. The seal is computed
// over bytes, not over fields, so it covers whatever the Revision struct
// holds now or later, and a reader checks it before it parses anything.
const (
	// RevisionFormat is the format of sealed metadata files.
	RevisionFormat = 2
	// legacyRevisionFormat is unsealed metadata, written before seals; it is
	// read only in repositories of format 1.
	legacyRevisionFormat = 1
	sealHead             = ",\n  \"seal\": \"blake3:"
	sealTail             = "\"\n}\n"
	sealLen              = len(sealHead) + 64 + len(sealTail)
	unsealedTail         = "\n}\n"
)

// marshal encodes the revision as a sealed metadata file.
func (r *Revision) marshal() ([]byte, error) {
	c := *r
	c.Format = RevisionFormat
	b, err := json.MarshalIndent(&c, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("repo: %w", err)
	}
	b = append(b, '\n')
	sum := blake3.Sum256(b)
	out := make([]byte, 0, len(b)-len(unsealedTail)+sealLen)
	out = append(out, b[:len(b)-len(unsealedTail)]...)
	out = append(out, sealHead...)
	out = hex.AppendEncode(out, sum[:])
	return append(out, sealTail...), nil
}

// unseal checks the seal of a metadata file and returns the bytes it
// covers; ok is false when b carries no seal at all.
func unseal(b []byte) (body []byte, ok bool, err error) {
	if len(b) < sealLen || !bytes.HasSuffix(b, []byte(sealTail)) ||
		!bytes.Equal(b[len(b)-sealLen:len(b)-sealLen+len(sealHead)], []byte(sealHead)) {
		return nil, false, nil
	}
	body = append(b[:len(b)-sealLen:len(b)-sealLen], unsealedTail...)
	sum := blake3.Sum256(body)
	if !bytes.Equal(hex.AppendEncode(nil, sum[:]), b[len(b)-len(sealTail)-64:len(b)-len(sealTail)]) {
		return nil, true, errors.New("the seal does not match the content")
	}
	return body, true, nil
}

// unmarshalRevision decodes a metadata file. A sealed file must carry a
// seal that matches; an unsealed (format 1) file is accepted only when
// legacy is set (a repository of format 1), and then only when it holds
// nothing but the members format 1 had, so that damage to a sealed file can
// never make it read as an unsealed one.
func unmarshalRevision(b []byte, legacy bool) (*Revision, error) {
	body, sealed, err := unseal(b)
	if err != nil {
		return nil, err
	}
	var r Revision
	if sealed {
		if err := json.Unmarshal(body, &r); err != nil {
			return nil, err
		}
		if r.Format == legacyRevisionFormat {
			return nil, errors.New("sealed, but of format 1")
		}
		if r.Format != RevisionFormat {
			return &r, errUnknownFormat
		}
		return &r, nil
	}
	if !legacy {
		return nil, errors.New("no seal")
	}
	var l legacyRevision
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&l); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("data after the JSON object")
	}
	if l.Format != legacyRevisionFormat {
		return nil, fmt.Errorf("no seal, and format %d", l.Format)
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// errUnknownFormat is a sealed file of a format this backy does not know.
var errUnknownFormat = errors.New("unknown metadata format")

// legacyRevision lists the members a format 1 metadata file may have:
// those it had when seals came. It must not grow with Revision.
type legacyRevision struct {
	Format     int        `json:"format"`
	ID         string     `json:"id"`
	Time       time.Time  `json:"time"`
	Parent     string     `json:"parent,omitempty"`
	Kind       string     `json:"kind"`
	Tags       []string   `json:"tags"`
	Trust      string     `json:"trust"`
	Source     string     `json:"source,omitempty"`
	Snapshot   string     `json:"snapshot,omitempty"`
	Base       string     `json:"base,omitempty"`
	Size       int64      `json:"size"`
	Stats      Stats      `json:"stats"`
	VerifiedAt *time.Time `json:"verified_at,omitempty"`
	Damage     []string   `json:"damage,omitempty"`
}

// decodeRevision parses metadata read from where (a file, or a RADOS
// object): a seal that does not match, an unsealed file (unless legacy),
// bytes that do not parse, or a different id, are damage.
func decodeRevision(b []byte, where, id string, legacy bool) (*Revision, error) {
	r, err := unmarshalRevision(b, legacy)
	switch {
	case errors.Is(err, errUnknownFormat):
		return nil, fmt.Errorf("%w: %s has format %d", ErrFormat, where, r.Format)
	case err != nil:
		return nil, fmt.Errorf("%w: %s: %v", ErrCorruptMeta, where, err)
	case r.ID != id:
		return nil, fmt.Errorf("%w: %s names revision %q", ErrCorruptMeta, where, r.ID)
	case r.Size < 0 || r.Size > MaxImageSize || r.Time.IsZero():
		return nil, fmt.Errorf("%w: %s: bad size or time", ErrCorruptMeta, where)
	}
	if r.Tags == nil {
		r.Tags = []string{}
	}
	return r, nil
}

// readRevision loads the metadata of revision id from the backend.
func (r *Repo) readRevision(id string) (*Revision, error) {
	b, err := r.b.ReadMeta(id)
	if err != nil {
		return nil, err
	}
	return r.decodeMeta(id, b)
}

// decodeMeta is decodeRevision for revision id's metadata in r, as r's
// format allows it.
func (r *Repo) decodeMeta(id string, b []byte) (*Revision, error) {
	return decodeRevision(b, r.objName(id, ".rev"), id, r.format == legacyFormat)
}

// objName names a revision's metadata (ext ".rev") or index (".idx") in
// messages: the file, or the RADOS object.
func (r *Repo) objName(id, ext string) string {
	if d, ok := r.b.(*dirBackend); ok {
		return d.revPath(id, ext)
	}
	return r.b.(interface{ objName(id, ext string) string }).objName(id, ext)
}
