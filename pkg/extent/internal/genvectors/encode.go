package main

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"hash/crc32"
)

// This file encodes streams by hand, straight from docs/extent-stream.md,
// without importing pkg/extent: the vectors are a second implementation of
// the spec, so a bug shared by the generator and the package is less likely
// to hide.

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

const magic = "\x89BXS\r\n\x1a\n"

// Stream kinds and record types as they appear on the wire.
const (
	kindFull         = 1
	kindDifferential = 2
	kindSample       = 3

	typeData = 'D'
	typeZero = 'Z'
	typeEnd  = 'E'
)

// hdr is a stream header with every field settable, including wrong ones.
type hdr struct {
	magic    string // defaults to the real magic
	version  uint16 // defaults to 1
	kind     byte
	flags    byte
	size     uint64
	source   string
	snapshot string
	base     string
	// The consistency block, written when flags has bit 0 (0x01) set.
	consistency byte
	frozen      uint64 // nanoseconds
	reason      string
	// sourceLen, if set, is written instead of len(source).
	sourceLen int
}

// builder appends a stream piece by piece and keeps the running values the
// END record needs, so a vector can be valid up to the one flaw it is about.
type builder struct {
	b       []byte
	hdr     hdr
	hdrSum  uint32
	chain   uint32
	count   uint64
	data    uint64
	zero    uint64
	records []recordJSON
}

func newBuilder(h hdr) *builder {
	if h.magic == "" {
		h.magic = magic
	}
	if h.version == 0 {
		h.version = 1
	}
	b := &builder{hdr: h}
	b.b = append(b.b, h.magic...)
	b.b = binary.BigEndian.AppendUint16(b.b, h.version)
	b.b = append(b.b, h.kind, h.flags)
	b.b = binary.BigEndian.AppendUint64(b.b, h.size)
	srcLen := len(h.source)
	if h.sourceLen != 0 {
		srcLen = h.sourceLen
	}
	b.b = binary.BigEndian.AppendUint16(b.b, uint16(srcLen))
	b.b = append(b.b, h.source...)
	for _, s := range []string{h.snapshot, h.base} {
		b.b = binary.BigEndian.AppendUint16(b.b, uint16(len(s)))
		b.b = append(b.b, s...)
	}
	if h.flags&1 != 0 {
		b.b = append(b.b, h.consistency)
		b.b = binary.BigEndian.AppendUint64(b.b, h.frozen)
		b.b = binary.BigEndian.AppendUint16(b.b, uint16(len(h.reason)))
		b.b = append(b.b, h.reason...)
	}
	b.hdrSum = crc32.Checksum(b.b, castagnoli)
	b.b = binary.BigEndian.AppendUint32(b.b, b.hdrSum)
	b.chain = b.link(0, b.hdrSum)
	return b
}

func (b *builder) link(chain, sum uint32) uint32 {
	return crc32.Update(chain, castagnoli, binary.BigEndian.AppendUint32(nil, sum))
}

// record appends a data or zero record (or anything claiming to be one)
// with a correct record checksum and folds it into the END values.
func (b *builder) record(typ byte, reserved [3]byte, off, length uint64, payload []byte) *builder {
	start := len(b.b)
	b.b = append(b.b, typ, reserved[0], reserved[1], reserved[2])
	b.b = binary.BigEndian.AppendUint64(b.b, off)
	b.b = binary.BigEndian.AppendUint64(b.b, length)
	sum := crc32.Update(crc32.Checksum(b.b[start:], castagnoli), castagnoli, payload)
	b.b = binary.BigEndian.AppendUint32(b.b, sum)
	b.b = append(b.b, payload...)
	b.chain = b.link(b.chain, sum)
	b.count++
	rec := recordJSON{Offset: off, Length: length}
	switch typ {
	case typeData:
		b.data += length
		rec.Type = "data"
		h := sha256.Sum256(payload)
		rec.SHA256 = hex.EncodeToString(h[:])
	case typeZero:
		b.zero += length
		rec.Type = "zero"
	}
	b.records = append(b.records, rec)
	return b
}

func (b *builder) dataRec(off uint64, payload []byte) *builder {
	return b.record(typeData, [3]byte{}, off, uint64(len(payload)), payload)
}

func (b *builder) zeroRec(off, length uint64) *builder {
	return b.record(typeZero, [3]byte{}, off, length, nil)
}

// endFields are the END record's fields; a vector may change them before
// they are encoded.
type endFields struct {
	reserved1 [3]byte
	count     uint64
	data      uint64
	zero      uint64
	chain     uint32
	reserved2 uint32
}

// end appends an END record; edit, if not nil, changes its fields first.
// The END record's own checksum is always computed over the edited bytes.
func (b *builder) end(edit func(*endFields)) *builder {
	f := endFields{count: b.count, data: b.data, zero: b.zero, chain: b.chain}
	if edit != nil {
		edit(&f)
	}
	start := len(b.b)
	b.b = append(b.b, typeEnd, f.reserved1[0], f.reserved1[1], f.reserved1[2])
	b.b = binary.BigEndian.AppendUint64(b.b, f.count)
	b.b = binary.BigEndian.AppendUint64(b.b, f.data)
	b.b = binary.BigEndian.AppendUint64(b.b, f.zero)
	b.b = binary.BigEndian.AppendUint32(b.b, f.chain)
	b.b = binary.BigEndian.AppendUint32(b.b, f.reserved2)
	b.b = binary.BigEndian.AppendUint32(b.b, crc32.Checksum(b.b[start:], castagnoli))
	return b
}

// raw appends bytes that are not a record.
func (b *builder) raw(p []byte) *builder {
	b.b = append(b.b, p...)
	return b
}

// flip inverts the bits of the byte at pos (negative: from the end).
func (b *builder) flip(pos int) *builder {
	if pos < 0 {
		pos += len(b.b)
	}
	b.b[pos] ^= 0xff
	return b
}

// cut drops the last n bytes.
func (b *builder) cut(n int) *builder {
	b.b = b.b[:len(b.b)-n]
	return b
}

// payload returns n deterministic pseudo-random bytes from seed (SplitMix64,
// written out so the vectors never depend on a library's generator).
func payload(seed uint64, n int) []byte {
	p := make([]byte, 0, n+8)
	for len(p) < n {
		seed += 0x9e3779b97f4a7c15
		z := seed
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
		z = (z ^ (z >> 27)) * 0x94d049bb133111eb
		p = binary.LittleEndian.AppendUint64(p, z^(z>>31))
	}
	return p[:n]
}
