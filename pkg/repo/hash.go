package repo

import (
	"encoding/hex"
	"fmt"

	"github.com/backy/backy/pkg/extent"
	"github.com/zeebo/blake3"
)

// Hash names a chunk: the BLAKE3-256 of its uncompressed 4 MiB content. The
// all-zero Hash stands for an all-zero chunk, which is never stored.
type Hash [32]byte

// ZeroHash marks an all-zero chunk in an index.
var ZeroHash Hash

// IsZero reports whether h marks an all-zero chunk.
func (h Hash) IsZero() bool { return h == ZeroHash }

func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// Short is the first 12 hex digits, for messages.
func (h Hash) Short() string { return h.String()[:12] }

// ParseHash parses 64 hex digits.
func ParseHash(s string) (Hash, error) {
	var h Hash
	if len(s) != 64 {
		return h, fmt.Errorf("repo: bad chunk name %q", s)
	}
	if _, err := hex.Decode(h[:], []byte(s)); err != nil {
		return h, fmt.Errorf("repo: bad chunk name %q", s)
	}
	return h, nil
}

// HashChunk returns the name of a chunk's content, or ZeroHash when it is
// all zeros. p must be a whole chunk (ChunkSize bytes).
func HashChunk(p []byte) Hash {
	if extent.IsZero(p) {
		return ZeroHash
	}
	return Hash(blake3.Sum256(p))
}
