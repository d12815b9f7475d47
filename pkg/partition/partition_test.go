package partition

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
)

// vector returns a test image made by testdata/make.sh.
func vector(t testing.TB, name string) []byte {
	t.Helper()
	f, err := os.Open("testdata/" + name + ".img.gz")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	z, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if _, err := b.ReadFrom(z); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func show(tb *Table) string {
	var s strings.Builder
	fmt.Fprintf(&s, "%s %d\n", tb.Scheme, tb.SectorSize)
	for _, p := range tb.Partitions {
		fmt.Fprintf(&s, "%d %d+%d %s %q\n", p.Number, p.Start, p.Size, p.Type, p.Name)
	}
	for _, e := range tb.Problems {
		fmt.Fprintf(&s, "problem: %v\n", e)
	}
	return s.String()
}

func read(t *testing.T, img []byte, size int64) string {
	t.Helper()
	tb, err := Read(bytes.NewReader(img), size)
	if err != nil {
		t.Fatal(err)
	}
	return show(tb)
}

func TestVectors(t *testing.T) {
	for _, tc := range []struct{ name, want string }{
		{"mbr", `mbr 512
1 1048576+1048576 0x83 Linux ""
2 2097152+524288 0x82 Linux swap ""
5 3670016+1048576 0x83 Linux ""
6 5242880+1536000 0x8e Linux LVM ""
`},
		{"gpt", `gpt 512
1 1048576+1048576 EFI System "efi"
2 2097152+4194304 Linux filesystem "root"
3 6291456+1048576 Linux swap "swap"
`},
	} {
		img := vector(t, tc.name)
		if got := read(t, img, int64(len(img))); got != tc.want {
			t.Errorf("%s:\n%s\nwant:\n%s", tc.name, got, tc.want)
		}
	}
}

func TestNoTable(t *testing.T) {
	for _, size := range []int{0, 100, 1 << 20} {
		if _, err := Read(bytes.NewReader(make([]byte, size)), int64(size)); !errors.Is(err, ErrNoTable) {
			t.Errorf("%d zero bytes: %v, want ErrNoTable", size, err)
		}
	}
}

// TestPastEnd reads the vectors as if the image were shorter than their
// tables say: what reaches past the end is reported and left out.
func TestPastEnd(t *testing.T) {
	img := vector(t, "mbr")[:4<<20]
	got := read(t, img, int64(len(img)))
	if !strings.Contains(got, "problem: partition 5 (bytes 3670016+1048576) is not inside the 4194304-byte image: not served\n") ||
		strings.Contains(got, "\n5 ") || !strings.Contains(got, "\n1 1048576+1048576 ") {
		t.Errorf("mbr cut to 4 MiB:\n%s", got)
	}
	gpt := vector(t, "gpt")[:5<<20]
	got = read(t, gpt, int64(len(gpt)))
	want := `gpt 512
1 1048576+1048576 EFI System "efi"
problem: partition 2 (sectors 4096-12287) is not inside the 5242880-byte image: not served
problem: partition 3 (sectors 12288-14335) is not inside the 5242880-byte image: not served
`
	if got != want {
		t.Errorf("gpt cut to 6 MiB:\n%s\nwant:\n%s", got, want)
	}
}

// TestEBRLoop links the last extended boot record back to itself and to
// the first: the chain is reported, not followed around.
func TestEBRLoop(t *testing.T) {
	img := vector(t, "mbr")
	const ext = 6144 // the extended partition's first sector
	second := int64(ext*512 + 446 + 16 + 8)
	next := binary.LittleEndian.Uint32(img[second:]) // the second EBR, relative to ext
	for _, link := range []uint32{next, 1} {
		b := bytes.Clone(img)
		binary.LittleEndian.PutUint32(b[(ext+int64(next))*512+446+16+8:], link)
		b[(ext+int64(next))*512+446+16+4] = 0x05
		if link == 1 { // sector ext+1: make it a valid EBR pointing back to the second
			at := (ext + 1) * 512
			b[at+510], b[at+511] = 0x55, 0xaa
			b[at+446+16+4] = 0x05
			binary.LittleEndian.PutUint32(b[at+446+16+8:], next)
		}
		got := read(t, b, int64(len(b)))
		if !strings.Contains(got, "links back to an earlier one: chain not followed further\n") || !strings.Contains(got, "\n6 5242880+1536000 ") {
			t.Errorf("link %d:\n%s", link, got)
		}
	}
}

func TestGPTChecksums(t *testing.T) {
	img := vector(t, "gpt")
	b := bytes.Clone(img)
	b[512+80]++ // number of entries: header checksum fails
	if got := read(t, b, int64(len(b))); got != "gpt 512\nproblem: GPT header checksum mismatch: nothing served\n" {
		t.Errorf("header:\n%s", got)
	}
	b = bytes.Clone(img)
	b[1024+56]++ // first entry's name: entry array checksum fails
	if got := read(t, b, int64(len(b))); got != "gpt 512\nproblem: GPT entry array checksum mismatch: nothing served\n" {
		t.Errorf("entries:\n%s", got)
	}
}

// FuzzRead feeds mutated tables: Read must not panic, loop or return a
// partition outside the image.
func FuzzRead(f *testing.F) {
	for _, name := range []string{"mbr", "gpt"} {
		img := vector(f, name)
		f.Add(img[:64<<10], int64(len(img)))
	}
	f.Fuzz(func(t *testing.T, head []byte, size int64) {
		if size < 0 || size > 1<<40 {
			return
		}
		tb, err := Read(sparse(head), size)
		if err != nil {
			return
		}
		for _, p := range tb.Partitions {
			if p.Start < 0 || p.Size <= 0 || p.Start+p.Size > size {
				t.Fatalf("partition %d %d+%d outside %d", p.Number, p.Start, p.Size, size)
			}
		}
	})
}

// sparse reads head, then zeros.
type sparse []byte

func (s sparse) ReadAt(p []byte, off int64) (int, error) {
	clear(p)
	if off < int64(len(s)) {
		copy(p, s[off:])
	}
	return len(p), nil
}
