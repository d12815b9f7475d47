// Package fsdetect tells which file system (or volume format) a block
// device holds by the magic numbers of its superblock, the way blkid does
// for the few kinds backy cares about. It reads at most the first 68 KiB
// and trusts nothing it reads: a magic number only names a kind, it is
// never followed.
package fsdetect

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
)

// Kind is a file system or volume format.
type Kind string

// The kinds Detect knows. Ext2, Ext3 and Ext4 share a magic number and
// differ by their features.
const (
	Unknown Kind = "unknown"
	Ext2    Kind = "ext2"
	Ext3    Kind = "ext3"
	Ext4    Kind = "ext4"
	XFS     Kind = "xfs"
	LVM2    Kind = "LVM2 physical volume"
	Btrfs   Kind = "btrfs"
	Swap    Kind = "swap"
	LUKS    Kind = "LUKS encrypted volume"
	VFAT    Kind = "vfat"
	NTFS    Kind = "ntfs"
)

// IsExt says whether k is one of the ext family (what fuse2fs reads).
func (k Kind) IsExt() bool { return k == Ext2 || k == Ext3 || k == Ext4 }

// ProbeSize is how many bytes from the start Detect may read: up to the
// btrfs superblock at 64 KiB.
const ProbeSize = 0x10000 + 4096

// ext superblock: 1024 bytes in, magic 0xEF53 at 56 (byte 1080 of the
// device); feature words at 92 (compat), 96 (incompat), 100 (ro_compat).
const (
	extSuper            = 1024
	extMagic            = 0xEF53
	extCompatJournal    = 0x4
	extIncompatExtents  = 0x40
	extIncompat64bit    = 0x80
	extIncompatFlexBG   = 0x200
	extIncompatJournal  = 0x8 // a journal device, not a file system
	extRoCompatHugeFile = 0x8
	extRoCompatGdtCsum  = 0x10
	extRoCompatDirNlink = 0x20
	extRoCompatExtraIsz = 0x40
	extRoCompatMetaCsum = 0x400
)

// Detect reads the start of r (size bytes long) and returns the kind it
// holds, Unknown when no magic number matches. Only read errors are
// errors; a device shorter than a superblock's place is simply not that
// kind.
func Detect(r io.ReaderAt, size int64) (Kind, error) {
	buf := make([]byte, min(size, ProbeSize))
	n, err := r.ReadAt(buf, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return Unknown, err
	}
	return DetectBytes(buf[:n]), nil
}

// DetectBytes is Detect on the first bytes of a device.
func DetectBytes(b []byte) Kind {
	at := func(off int, magic string) bool {
		return len(b) >= off+len(magic) && string(b[off:off+len(magic)]) == magic
	}
	switch {
	case at(0, "XFSB"):
		return XFS
	case at(0, "LUKS\xba\xbe"):
		return LUKS
	case at(0x10040, "_BHRfS_M"):
		return Btrfs
	case at(3, "NTFS    "):
		return NTFS
	case isExt(b):
		return extKind(b[extSuper:])
	case isLVM(b):
		return LVM2
	case at(4096-10, "SWAPSPACE2"), at(4096-10, "SWAP-SPACE"):
		return Swap
	case len(b) >= 512 && b[510] == 0x55 && b[511] == 0xAA && (at(54, "FAT12   ") || at(54, "FAT16   ") || at(82, "FAT32   ")):
		return VFAT
	}
	return Unknown
}

func isExt(b []byte) bool {
	return len(b) >= extSuper+1024 && binary.LittleEndian.Uint16(b[extSuper+56:]) == extMagic &&
		binary.LittleEndian.Uint32(b[extSuper+96:])&extIncompatJournal == 0
}

// extKind names an ext file system by its features as blkid does: ext4
// features make it ext4, a journal without them ext3, else ext2.
func extKind(sb []byte) Kind {
	compat := binary.LittleEndian.Uint32(sb[92:])
	incompat := binary.LittleEndian.Uint32(sb[96:])
	roCompat := binary.LittleEndian.Uint32(sb[100:])
	if incompat&(extIncompatExtents|extIncompat64bit|extIncompatFlexBG) != 0 ||
		roCompat&(extRoCompatHugeFile|extRoCompatGdtCsum|extRoCompatDirNlink|extRoCompatExtraIsz|extRoCompatMetaCsum) != 0 {
		return Ext4
	}
	if compat&extCompatJournal != 0 {
		return Ext3
	}
	return Ext2
}

// isLVM finds an LVM2 label: "LABELONE" at the start of one of the first
// four 512-byte sectors, with type "LVM2 001" 24 bytes into the label.
func isLVM(b []byte) bool {
	for s := 0; s < 4; s++ {
		off := s * 512
		if len(b) >= off+32 && bytes.Equal(b[off:off+8], []byte("LABELONE")) && bytes.Equal(b[off+24:off+32], []byte("LVM2 001")) {
			return true
		}
	}
	return false
}
