package repo

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

// Index maps the chunks of one revision, in image order, to their hashes.
type Index struct {
	Size   int64  // image size in bytes
	Hashes []Hash // one per ChunkSize bytes of the image; ZeroHash for zeros
}

const (
	indexMagic     = "BACKYIDX"
	indexHeaderLen = 40
	// MaxImageSize bounds what an index may describe (the extent stream's limit).
	MaxImageSize = 1 << 60
	// maxIndexLen is the length of the index of a MaxImageSize image.
	maxIndexLen = indexHeaderLen + 4 + 32*(MaxImageSize/ChunkSize)
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ChunkCount is how many chunks an image of size bytes has.
func ChunkCount(size int64) int64 { return (size + ChunkSize - 1) / ChunkSize }

// NewIndex returns an index of all-zero chunks for an image of size bytes.
func NewIndex(size int64) *Index {
	return &Index{Size: size, Hashes: make([]Hash, ChunkCount(size))}
}

// Resize changes the image size, keeping the hashes of the chunks that stay.
func (ix *Index) Resize(size int64) {
	n := ChunkCount(size)
	if int64(len(ix.Hashes)) >= n {
		ix.Hashes = ix.Hashes[:n:n]
	} else {
		ix.Hashes = append(ix.Hashes, make([]Hash, n-int64(len(ix.Hashes)))...)
	}
	ix.Size = size
}

// MarshalBinary encodes the index (docs/repository.md, "Index").
func (ix *Index) MarshalBinary() ([]byte, error) {
	b := make([]byte, indexHeaderLen, indexHeaderLen+32*len(ix.Hashes)+4)
	copy(b, indexMagic)
	binary.BigEndian.PutUint16(b[8:], IndexVersion)
	binary.BigEndian.PutUint32(b[12:], ChunkSize)
	binary.BigEndian.PutUint64(b[16:], uint64(ix.Size))
	binary.BigEndian.PutUint64(b[24:], uint64(len(ix.Hashes)))
	binary.BigEndian.PutUint32(b[32:], crc32.Checksum(b[:32], castagnoli))
	for i := range ix.Hashes {
		b = append(b, ix.Hashes[i][:]...)
	}
	sum := crc32.Checksum(b[indexHeaderLen:], castagnoli)
	return binary.BigEndian.AppendUint32(b, sum), nil
}

// UnmarshalBinary decodes and verifies an index.
func (ix *Index) UnmarshalBinary(b []byte) error {
	if len(b) < indexHeaderLen+4 || string(b[:8]) != indexMagic {
		return fmt.Errorf("%w: bad magic or short file", ErrCorruptIndex)
	}
	if crc32.Checksum(b[:32], castagnoli) != binary.BigEndian.Uint32(b[32:]) {
		return fmt.Errorf("%w: header checksum", ErrCorruptIndex)
	}
	if binary.BigEndian.Uint32(b[36:]) != 0 || binary.BigEndian.Uint16(b[10:]) != 0 {
		return fmt.Errorf("%w: reserved bytes set", ErrCorruptIndex)
	}
	if v := binary.BigEndian.Uint16(b[8:]); v != IndexVersion {
		return fmt.Errorf("%w: index version %d", ErrFormat, v)
	}
	if cs := binary.BigEndian.Uint32(b[12:]); cs != ChunkSize {
		return fmt.Errorf("%w: chunk size %d", ErrFormat, cs)
	}
	size := binary.BigEndian.Uint64(b[16:])
	count := binary.BigEndian.Uint64(b[24:])
	if size > MaxImageSize || count != uint64(ChunkCount(int64(size))) {
		return fmt.Errorf("%w: size %d does not match %d chunks", ErrCorruptIndex, size, count)
	}
	if uint64(len(b)) != indexHeaderLen+32*count+4 {
		return fmt.Errorf("%w: length %d, want %d", ErrCorruptIndex, len(b), indexHeaderLen+32*count+4)
	}
	body := b[indexHeaderLen : len(b)-4]
	if crc32.Checksum(body, castagnoli) != binary.BigEndian.Uint32(b[len(b)-4:]) {
		return fmt.Errorf("%w: hash list checksum", ErrCorruptIndex)
	}
	ix.Size = int64(size)
	ix.Hashes = make([]Hash, count)
	for i := range ix.Hashes {
		copy(ix.Hashes[i][:], body[32*i:])
	}
	return nil
}
