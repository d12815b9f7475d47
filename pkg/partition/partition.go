// Package partition reads the partition table of a disk image (MBR with
// extended partitions, or GPT) from an io.ReaderAt, without trusting it:
// a partition that reaches past the image, a chain of extended boot
// records that loops or runs too long, and a GPT whose checksums do not
// match are reported as problems, never followed. It is a format package
// (layer 1); docs/partition.md describes the formats it reads and what it refuses.
package partition

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"unicode/utf16"

	"github.com/backy/backy/pkg/exitcode"
)

// SectorSize is the logical sector size tables are read with. GPT disks
// with 4096-byte sectors are found too (their header is at byte 4096).
const SectorSize = 512

// maxLogical bounds the extended boot record chain (Linux stops at a few
// dozen logical partitions; the bound only has to end hostile chains).
const maxLogical = 128

// maxEntryBytes bounds the GPT partition entry array read into memory.
const maxEntryBytes = 1 << 20

// ErrNoTable is returned by Read for an image without a partition table.
var ErrNoTable = exitcode.New(exitcode.NotFound, "partition: no partition table")

// Partition is one partition of a table.
type Partition struct {
	Number int    // 1-4 primary, 5... logical (MBR); entry number (GPT)
	Start  int64  // byte offset in the image
	Size   int64  // bytes
	Type   string // "0x83 Linux", or a GPT type GUID's name (or the GUID)
	Name   string // GPT partition name, "" for MBR
}

// Table is what Read found: the partitions that lie inside the image, in
// number order, and one problem per entry or structure it did not follow.
type Table struct {
	Scheme     string // "mbr" or "gpt"
	SectorSize int64
	Partitions []Partition
	Problems   []error
}

// Read reads the partition table of an image of size bytes. It returns
// ErrNoTable when the first sector carries no MBR signature, and an I/O
// error of r as it is. Structural damage is not an error: it lands in
// Table.Problems and the affected partitions are left out.
func Read(r io.ReaderAt, size int64) (*Table, error) {
	if size < SectorSize {
		return nil, ErrNoTable
	}
	mbr := make([]byte, SectorSize)
	if err := readFull(r, mbr, 0); err != nil {
		return nil, err
	}
	if mbr[510] != 0x55 || mbr[511] != 0xaa {
		return nil, ErrNoTable
	}
	for i := range 4 {
		if mbr[446+16*i+4] == 0xee {
			return readGPT(r, size)
		}
	}
	return readMBR(r, size, mbr)
}

func readFull(r io.ReaderAt, p []byte, off int64) error {
	if _, err := io.ReadFull(io.NewSectionReader(r, off, int64(len(p))), p); err != nil {
		return fmt.Errorf("partition: read at %d: %w", off, err)
	}
	return nil
}

// mbrEntry is one 16-byte entry of a master or extended boot record.
type mbrEntry struct {
	typ         byte
	start, size int64 // sectors
}

func mbrEntries(sec []byte) [4]mbrEntry {
	var out [4]mbrEntry
	for i := range out {
		e := sec[446+16*i:]
		out[i] = mbrEntry{typ: e[4],
			start: int64(binary.LittleEndian.Uint32(e[8:])),
			size:  int64(binary.LittleEndian.Uint32(e[12:]))}
	}
	return out
}

func isExtended(typ byte) bool { return typ == 0x05 || typ == 0x0f || typ == 0x85 }

// add appends p when it lies inside the image and reports it otherwise.
func (t *Table) add(p Partition, size int64) {
	if p.Size <= 0 || p.Start < t.SectorSize || p.Start > size || p.Size > size-p.Start {
		t.Problems = append(t.Problems, fmt.Errorf("partition %d (bytes %d+%d) is not inside the %d-byte image: not served", p.Number, p.Start, p.Size, size))
		return
	}
	t.Partitions = append(t.Partitions, p)
}

func readMBR(r io.ReaderAt, size int64, mbr []byte) (*Table, error) {
	t := &Table{Scheme: "mbr", SectorSize: SectorSize}
	var ext *mbrEntry
	for i, e := range mbrEntries(mbr) {
		switch {
		case e.typ == 0:
		case isExtended(e.typ):
			if ext != nil {
				t.Problems = append(t.Problems, fmt.Errorf("partition %d: a second extended partition: not followed", i+1))
				continue
			}
			ext = &e
		default:
			t.add(Partition{Number: i + 1, Start: e.start * SectorSize, Size: e.size * SectorSize, Type: mbrType(e.typ)}, size)
		}
	}
	if ext != nil {
		t.readLogical(r, size, ext)
	}
	return t, nil
}

// readLogical follows the chain of extended boot records, each of which
// holds one logical partition (relative to itself) and the link to the
// next (relative to the extended partition's start).
func (t *Table) readLogical(r io.ReaderAt, size int64, ext *mbrEntry) {
	seen := map[int64]bool{}
	sec := make([]byte, SectorSize)
	for at, n := ext.start, 5; ; n++ {
		if seen[at] {
			t.Problems = append(t.Problems, fmt.Errorf("extended boot record at sector %d links back to an earlier one: chain not followed further", at))
			return
		}
		if n-4 > maxLogical {
			t.Problems = append(t.Problems, fmt.Errorf("more than %d logical partitions: chain not followed further", maxLogical))
			return
		}
		seen[at] = true
		if at*SectorSize > size-SectorSize || at < ext.start || at >= ext.start+ext.size {
			t.Problems = append(t.Problems, fmt.Errorf("extended boot record at sector %d is outside the extended partition or the image: not followed", at))
			return
		}
		if err := readFull(r, sec, at*SectorSize); err != nil {
			t.Problems = append(t.Problems, err)
			return
		}
		if sec[510] != 0x55 || sec[511] != 0xaa {
			t.Problems = append(t.Problems, fmt.Errorf("extended boot record at sector %d has no signature: not followed", at))
			return
		}
		es := mbrEntries(sec)
		if es[0].typ != 0 {
			t.add(Partition{Number: n, Start: (at + es[0].start) * SectorSize, Size: es[0].size * SectorSize, Type: mbrType(es[0].typ)}, size)
		}
		if !isExtended(es[1].typ) || es[1].start == 0 {
			return
		}
		at = ext.start + es[1].start
	}
}

var gptSig = []byte("EFI PART")

func readGPT(r io.ReaderAt, size int64) (*Table, error) {
	hdr := make([]byte, 92)
	ss := int64(SectorSize)
	if err := readFull(r, hdr, ss); err != nil {
		return nil, err
	}
	if !bytes.Equal(hdr[:8], gptSig) && size >= 2*4096 {
		ss = 4096
		if err := readFull(r, hdr, ss); err != nil {
			return nil, err
		}
	}
	t := &Table{Scheme: "gpt", SectorSize: ss}
	if !bytes.Equal(hdr[:8], gptSig) {
		t.Problems = append(t.Problems, errors.New("protective MBR but no GPT header: nothing served"))
		return t, nil
	}
	if hs := binary.LittleEndian.Uint32(hdr[12:]); hs != 92 {
		// A larger header is allowed by the spec; its tail is reserved
		// zeros, but its checksum covers it: read it whole.
		if hs < 92 || int64(hs) > ss {
			t.Problems = append(t.Problems, fmt.Errorf("GPT header size %d: nothing served", hs))
			return t, nil
		}
		hdr = make([]byte, hs)
		if err := readFull(r, hdr, ss); err != nil {
			return nil, err
		}
	}
	want := binary.LittleEndian.Uint32(hdr[16:])
	c := bytes.Clone(hdr)
	clear(c[16:20])
	if crc32.ChecksumIEEE(c) != want {
		t.Problems = append(t.Problems, errors.New("GPT header checksum mismatch: nothing served"))
		return t, nil
	}
	lba := int64(binary.LittleEndian.Uint64(hdr[72:]))
	num := int64(binary.LittleEndian.Uint32(hdr[80:]))
	esz := int64(binary.LittleEndian.Uint32(hdr[84:]))
	if esz < 128 || esz%8 != 0 || num*esz > maxEntryBytes || lba < 2 || lba > size/ss {
		t.Problems = append(t.Problems, fmt.Errorf("GPT entry array (%d entries of %d bytes at sector %d) is implausible: nothing served", num, esz, lba))
		return t, nil
	}
	ents := make([]byte, num*esz)
	if err := readFull(r, ents, lba*ss); err != nil {
		t.Problems = append(t.Problems, err)
		return t, nil
	}
	if crc32.ChecksumIEEE(ents) != binary.LittleEndian.Uint32(hdr[88:]) {
		t.Problems = append(t.Problems, errors.New("GPT entry array checksum mismatch: nothing served"))
		return t, nil
	}
	for i := range num {
		e := ents[i*esz : (i+1)*esz]
		if bytes.Equal(e[:16], make([]byte, 16)) {
			continue
		}
		first := binary.LittleEndian.Uint64(e[32:])
		last := binary.LittleEndian.Uint64(e[40:])
		p := Partition{Number: int(i + 1), Type: gptType(e[:16]), Name: utf16Name(e[56:128])}
		if last < first || last >= uint64(size/ss) {
			t.Problems = append(t.Problems, fmt.Errorf("partition %d (sectors %d-%d) is not inside the %d-byte image: not served", p.Number, first, last, size))
			continue
		}
		p.Start, p.Size = int64(first)*ss, int64(last-first+1)*ss
		t.add(p, size)
	}
	return t, nil
}

func utf16Name(b []byte) string {
	u := make([]uint16, 0, len(b)/2)
	for i := 0; i+1 < len(b); i += 2 {
		c := binary.LittleEndian.Uint16(b[i:])
		if c == 0 {
			break
		}
		u = append(u, c)
	}
	return string(utf16.Decode(u))
}

// GUID formats a GPT GUID (its first three fields little-endian).
func GUID(b []byte) string {
	return fmt.Sprintf("%08X-%04X-%04X-%X-%X", binary.LittleEndian.Uint32(b), binary.LittleEndian.Uint16(b[4:]),
		binary.LittleEndian.Uint16(b[6:]), b[8:10], b[10:16])
}

var gptTypes = map[string]string{
	"0FC63DAF-8483-4772-8E79-3D69D8477DE4": "Linux filesystem",
	"C12A7328-F81F-11D2-BA4B-00A0C93EC93B": "EFI System",
	"0657FD6D-A4AB-43C4-84E5-0933C84B4F4F": "Linux swap",
	"E6D6D379-F507-44C2-A23C-238F2A3DF928": "Linux LVM",
	"A19D880F-05FC-4D3B-A006-743F0F84911E": "Linux RAID",
	"21686148-6449-6E6F-744E-656564454649": "BIOS boot",
	"EBD0A0A2-B9E5-4433-87C0-68B6B72699C7": "Microsoft basic data",
	"4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709": "Linux root (x86-64)",
	"BC13C2FF-59E6-4262-A352-B275FD6F7172": "Linux extended boot",
}

func gptType(b []byte) string {
	g := GUID(b)
	if n, ok := gptTypes[g]; ok {
		return n
	}
	return g
}

var mbrTypes = map[byte]string{
	0x01: "FAT12", 0x04: "FAT16 <32M", 0x06: "FAT16", 0x07: "HPFS/NTFS/exFAT",
	0x0b: "W95 FAT32", 0x0c: "W95 FAT32 (LBA)", 0x0e: "W95 FAT16 (LBA)",
	0x82: "Linux swap", 0x83: "Linux", 0x8e: "Linux LVM", 0xef: "EFI System",
	0xfd: "Linux raid autodetect",
}

func mbrType(t byte) string {
	if n, ok := mbrTypes[t]; ok {
		return fmt.Sprintf("0x%02x %s", t, n)
	}
	return fmt.Sprintf("0x%02x", t)
}
