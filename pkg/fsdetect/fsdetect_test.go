package fsdetect

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestRealFileSystems makes each kind with its own mkfs and detects it.
func TestRealFileSystems(t *testing.T) {
	cases := []struct {
		kind Kind
		size int64
		cmd  []string // IMG is replaced by the image path
	}{
		{Ext2, 8 << 20, []string{"mke2fs", "-q", "-F", "-t", "ext2", "IMG"}},
		{Ext3, 8 << 20, []string{"mke2fs", "-q", "-F", "-t", "ext3", "IMG"}},
		{Ext4, 8 << 20, []string{"mke2fs", "-q", "-F", "-t", "ext4", "IMG"}},
		{XFS, 300 << 20, []string{"mkfs.xfs", "-q", "-f", "IMG"}},
		{Swap, 8 << 20, []string{"mkswap", "IMG"}},
	}
	for _, c := range cases {
		t.Run(string(c.kind), func(t *testing.T) {
			prog := tool(t, c.cmd[0])
			img := filepath.Join(t.TempDir(), "img")
			if err := os.WriteFile(img, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(img, c.size); err != nil {
				t.Fatal(err)
			}
			args := append([]string(nil), c.cmd[1:]...)
			for i := range args {
				if args[i] == "IMG" {
					args[i] = img
				}
			}
			if out, err := exec.Command(prog, args...).CombinedOutput(); err != nil {
				t.Fatalf("%s: %v\n%s", c.cmd[0], err, out)
			}
			f, err := os.Open(img)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			k, err := Detect(f, c.size)
			if err != nil || k != c.kind {
				t.Fatalf("Detect = %q, %v; want %q", k, err, c.kind)
			}
			if k.IsExt() != (c.kind == Ext2 || c.kind == Ext3 || c.kind == Ext4) {
				t.Fatalf("%q.IsExt() = %v", k, k.IsExt())
			}
		})
	}
}

// tool finds a mkfs program (also in sbin); missing, the test fails under
// BACKY_REQUIRE_TOOLS=1 and is skipped otherwise.
func tool(t *testing.T, name string) string {
	for _, p := range []string{name, "/usr/sbin/" + name, "/sbin/" + name} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	if os.Getenv("BACKY_REQUIRE_TOOLS") == "1" {
		t.Fatalf("%s not found (scripts/deps.sh installs it)", name)
	}
	t.Skipf("%s not found", name)
	return ""
}

func TestSynthetic(t *testing.T) {
	ext := func(compat, incompat, roCompat uint32) []byte {
		b := make([]byte, 4096)
		binary.LittleEndian.PutUint16(b[1080:], 0xEF53)
		binary.LittleEndian.PutUint32(b[1024+92:], compat)
		binary.LittleEndian.PutUint32(b[1024+96:], incompat)
		binary.LittleEndian.PutUint32(b[1024+100:], roCompat)
		return b
	}
	at := func(size, off int, s string) []byte {
		b := make([]byte, size)
		copy(b[off:], s)
		return b
	}
	lvm := func(sector int) []byte {
		b := make([]byte, 4096)
		copy(b[sector*512:], "LABELONE")
		copy(b[sector*512+24:], "LVM2 001")
		return b
	}
	fat := at(4096, 82, "FAT32   ")
	fat[510], fat[511] = 0x55, 0xAA
	cases := []struct {
		name string
		b    []byte
		want Kind
	}{
		{"ext2", ext(0, 0, 0), Ext2},
		{"ext3", ext(0x4, 0, 0), Ext3},
		{"ext4 extents", ext(0x4, 0x40, 0), Ext4},
		{"ext4 metadata_csum only", ext(0, 0, 0x400), Ext4},
		{"ext journal device", ext(0, 0x8, 0), Unknown},
		{"xfs", at(4096, 0, "XFSB"), XFS},
		{"lvm sector 1", lvm(1), LVM2},
		{"lvm sector 3", lvm(3), LVM2},
		{"LABELONE without LVM2 type", at(4096, 512, "LABELONE"), Unknown},
		{"btrfs", at(ProbeSize, 0x10040, "_BHRfS_M"), Btrfs},
		{"btrfs magic cut off", at(0x10044, 0x10040, "_BHRfS_M"), Unknown},
		{"swap", at(4096, 4086, "SWAPSPACE2"), Swap},
		{"luks", at(4096, 0, "LUKS\xba\xbe"), LUKS},
		{"ntfs", at(4096, 3, "NTFS    "), NTFS},
		{"vfat", fat, VFAT},
		{"fat label without boot signature", at(4096, 82, "FAT32   "), Unknown},
		{"zeros", make([]byte, ProbeSize), Unknown},
		{"empty", nil, Unknown},
		{"ext magic past the end", ext(0, 0, 0)[:1082], Unknown},
	}
	for _, c := range cases {
		if got := DetectBytes(c.b); got != c.want {
			t.Errorf("%s: DetectBytes = %q, want %q", c.name, got, c.want)
		}
		if got, err := Detect(bytes.NewReader(c.b), int64(len(c.b))); err != nil || got != c.want {
			t.Errorf("%s: Detect = %q, %v, want %q", c.name, got, err, c.want)
		}
	}
}

type failReader struct{}

var errRead = errors.New("chunk damaged")

func (failReader) ReadAt([]byte, int64) (int, error) { return 0, errRead }

func TestReadError(t *testing.T) {
	if k, err := Detect(failReader{}, 1<<20); !errors.Is(err, errRead) || k != Unknown {
		t.Fatalf("Detect = %q, %v; want the read error", k, err)
	}
}

func FuzzDetectBytes(f *testing.F) {
	f.Add(make([]byte, 2048))
	f.Add([]byte("XFSB"))
	f.Fuzz(func(t *testing.T, b []byte) {
		k := DetectBytes(b)
		if k == "" {
			t.Fatal("empty kind")
		}
	})
}
