// Command genvectors writes the test vectors of package rbddiff:
// testdata/valid/NAME.bin with NAME.txt (the expected decoding) and
// testdata/invalid/NAME.bin with NAME.err (the expected error). It encodes
// the bytes by hand, independently of package rbddiff, following
// docs/rbd-diff.md, so that the vectors check the package rather than echo it.
//
// Usage (from pkg/rbddiff): go run ./internal/genvectors -o testdata
package main

import (
	"encoding/binary"
	"flag"
	"fmt"
	"github.com/backy/backy/internal/pattern"
	"hash/crc32"
	"log"
	"os"
	"path/filepath"
	"strings"
)

const (
	mib      = 1 << 20
	maxWrite = 64 * mib
	maxName  = 4096
)

// enc builds one stream byte by byte and, in parallel, its expected decoding.
type enc struct {
	v       int
	b       []byte
	from    string
	to      string
	protect string
	size    string
	records []string
}

func newEnc(v int) *enc {
	e := &enc{v: v}
	e.raw([]byte(fmt.Sprintf("rbd diff v%d\n", v))...)
	return e
}

func (e *enc) raw(b ...byte) *enc { e.b = append(e.b, b...); return e }
func (e *enc) u32(x uint32) *enc  { e.b = binary.LittleEndian.AppendUint32(e.b, x); return e }
func (e *enc) u64(x uint64) *enc  { e.b = binary.LittleEndian.AppendUint64(e.b, x); return e }

// tag writes a tag and, in version 2, the record length.
func (e *enc) tag(t byte, recLen uint64) *enc {
	e.raw(t)
	if e.v == 2 {
		e.u64(recLen)
	}
	return e
}

func (e *enc) name(t byte, s string) *enc {
	e.tag(t, 4+uint64(len(s))).u32(uint32(len(s))).raw([]byte(s)...)
	if t == 'f' {
		e.from = s
	} else {
		e.to = s
	}
	return e
}

func (e *enc) protected(p bool) *enc {
	v := byte(0)
	if p {
		v = 1
	}
	e.tag('p', 1).raw(v)
	e.protect = fmt.Sprint(p)
	return e
}

func (e *enc) sz(n uint64) *enc {
	e.tag('s', 8).u64(n)
	e.size = fmt.Sprint(n)
	return e
}

func (e *enc) w(off uint64, data []byte) *enc {
	e.tag('w', 16+uint64(len(data))).u64(off).u64(uint64(len(data))).raw(data...)
	sum := crc32.Checksum(data, crc32.MakeTable(crc32.Castagnoli))
	e.records = append(e.records, fmt.Sprintf("w %d %d crc32c=%08x", off, len(data), sum))
	return e
}

func (e *enc) z(off, n uint64) *enc {
	e.tag('z', 16).u64(off).u64(n)
	e.records = append(e.records, fmt.Sprintf("z %d %d", off, n))
	return e
}

func (e *enc) end() *enc { return e.raw('e') }

// txt renders the expected decoding, in the format of the package's tests.
func (e *enc) txt() string {
	var s strings.Builder
	fmt.Fprintf(&s, "version %d\n", e.v)
	if e.from != "" {
		fmt.Fprintf(&s, "from %q\n", e.from)
	}
	if e.to != "" {
		fmt.Fprintf(&s, "to %q\n", e.to)
	}
	if e.protect != "" {
		fmt.Fprintf(&s, "protected %s\n", e.protect)
	}
	fmt.Fprintf(&s, "size %s\n", e.size)
	for _, r := range e.records {
		s.WriteString(r + "\n")
	}
	s.WriteString("end\n")
	return s.String()
}

// data returns n deterministic, not very compressible bytes.
func data(seed uint32, n int) []byte { return pattern.Bytes(seed, n) }

func valid() map[string]*enc {
	long := strings.Repeat("n", maxName)
	return map[string]*enc{
		"v1-empty-image": newEnc(1).sz(0).end(),
		"v1-head":        newEnc(1).sz(4*mib).w(0, data(1, 512)).z(4096, 4096).end(),
		"v1-full": newEnc(1).name('f', "backy-a").name('t', "backy-b").sz(16*mib).
			w(0, data(2, 4096)).w(4096, data(3, 100)).z(8192, mib).
			w(4*mib, data(4, 70000)).z(16*mib-8192, 8192).end(),
		"v1-doc-example": newEnc(1).name('f', "a").name('t', "b").sz(4*mib).
			w(4096, []byte("xyz")).z(65536, 8192).end(),
		"unordered-meta-v1": newEnc(1).sz(mib).name('t', "b").name('f', "a").w(0, data(5, 10)).end(),
		"v1-long-names":     newEnc(1).name('f', long).name('t', long[1:]).sz(mib).end(),
		"v1-binary-name":    newEnc(1).name('t', "\x00\xff snap\n").sz(mib).end(),
		"v1-only-zeros":     newEnc(1).name('t', "s").sz(1<<40).z(0, 1<<40).end(),
		"v2-full": newEnc(2).name('f', "backy-a").name('t', "backy-b").protected(true).sz(16*mib).
			w(0, data(6, 4096)).z(4096, 4096).w(mib, data(7, 70000)).z(15*mib, mib).end(),
		"v2-no-snaps":        newEnc(2).sz(8*mib).w(8*mib-512, data(8, 512)).end(),
		"v2-protected-false": newEnc(2).name('t', "x").protected(false).sz(mib).z(0, mib).end(),
		"v2-doc-example":     newEnc(2).name('f', "a").name('t', "b").sz(4*mib).w(4096, []byte("xyz")).z(65536, 8192).end(),
		"unordered-meta-v2":  newEnc(2).sz(mib).protected(false).name('t', "b").end(),
	}
}

type bad struct {
	b   []byte
	err string
}

func invalid() map[string]bad {
	v1 := func() *enc { return newEnc(1) }
	v2 := func() *enc { return newEnc(2) }
	eof := "io.ErrUnexpectedEOF"
	return map[string]bad{
		"empty":                 {nil, eof},
		"banner-only":           {v1().b, eof},
		"banner-partial":        {[]byte("rbd diff"), eof},
		"bad-magic-v3":          {[]byte("rbd diff v3\ns\x00\x00\x00\x00\x00\x00\x00\x00e"), "ErrBadMagic"},
		"bad-magic-image-v2":    {[]byte("rbd image v2\nE"), "ErrBadMagic"},
		"bad-magic-short":       {[]byte("hello"), "ErrBadMagic"},
		"unknown-tag-v1":        {v1().sz(mib).raw('q').end().b, "ErrBadTag"},
		"unknown-tag-v1-data":   {v1().sz(mib).w(0, data(9, 4)).raw('W').end().b, "ErrBadTag"},
		"unknown-tag-v2-meta":   {v2().raw('q').u64(0).sz(mib).end().b, "ErrBadTag"},
		"unknown-tag-v2-data":   {v2().sz(mib).z(0, 512).raw('q').u64(1).raw(0).end().b, "ErrBadTag"},
		"protect-in-v1":         {v1().name('t', "s").raw('p', 1).sz(mib).end().b, "ErrBadTag"},
		"missing-end":           {v1().sz(mib).w(0, data(10, 16)).b, eof},
		"missing-end-v2":        {v2().sz(mib).z(0, 16).b, eof},
		"truncated-data":        {v1().sz(mib).raw('w').u64(0).u64(100).raw(data(11, 99)...).b, eof},
		"truncated-name":        {v1().raw('t').u32(5).raw('a', 'b').b, eof},
		"after-end":             {v1().sz(mib).end().raw(0).b, "ErrTrailing"},
		"after-end-second":      {append(v1().sz(mib).end().b, v1().sz(mib).end().b...), "ErrTrailing"},
		"after-end-v2-length":   {v2().sz(mib).end().u64(0).b, "ErrTrailing"},
		"write-too-long":        {v1().sz(128 * mib).raw('w').u64(0).u64(maxWrite + 1).b, "ErrTooLong"},
		"write-too-long-v2":     {v2().sz(128 * mib).raw('w').u64(16 + maxWrite + 1).u64(0).u64(maxWrite + 1).b, "ErrTooLong"},
		"name-too-long":         {v1().raw('f').u32(maxName + 1).raw(make([]byte, maxName+1)...).sz(mib).end().b, "ErrTooLong"},
		"write-beyond-size":     {v1().sz(mib).w(mib-2, data(12, 3)).end().b, "ErrOutOfRange"},
		"zero-beyond-size":      {v1().sz(mib).z(0, mib+1).end().b, "ErrOutOfRange"},
		"zero-after-size":       {v1().sz(mib).z(mib, 1).end().b, "ErrOutOfRange"},
		"offset-overflow":       {v1().sz(^uint64(0)).raw('z').u64(^uint64(0) - 1).u64(4).end().b, "ErrOutOfRange"},
		"overlap":               {v1().sz(mib).w(0, data(13, 100)).z(99, 10).end().b, "ErrOrder"},
		"descending":            {v1().sz(mib).z(8192, 4096).w(0, data(14, 4096)).end().b, "ErrOrder"},
		"duplicate-record":      {v1().sz(mib).z(0, 4096).z(0, 4096).end().b, "ErrOrder"},
		"missing-size":          {v1().name('t', "s").w(0, data(15, 4)).end().b, "ErrBadRecord"},
		"missing-size-end":      {v1().name('t', "s").end().b, "ErrBadRecord"},
		"duplicate-size":        {v1().sz(mib).sz(mib).end().b, "ErrBadRecord"},
		"duplicate-from":        {v1().name('f', "a").name('f', "a").sz(mib).end().b, "ErrBadRecord"},
		"duplicate-protect":     {v2().name('t', "a").protected(true).protected(true).sz(mib).end().b, "ErrBadRecord"},
		"meta-after-data":       {v1().sz(mib).z(0, 512).name('t', "s").end().b, "ErrBadRecord"},
		"size-after-data":       {v1().sz(mib).z(0, 512).sz(2 * mib).end().b, "ErrBadRecord"},
		"empty-name":            {v1().name('f', "").sz(mib).end().b, "ErrBadRecord"},
		"empty-write":           {v1().sz(mib).w(0, nil).end().b, "ErrBadRecord"},
		"empty-zero":            {v1().sz(mib).z(0, 0).end().b, "ErrBadRecord"},
		"v2-bad-length-write":   {v2().sz(mib).raw('w').u64(16).u64(0).u64(3).raw('a', 'b', 'c').end().b, "ErrBadRecord"},
		"v2-bad-length-zero":    {v2().sz(mib).raw('z').u64(17).u64(0).u64(3).end().b, "ErrBadRecord"},
		"v2-bad-length-size":    {v2().raw('s').u64(9).u64(mib).end().b, "ErrBadRecord"},
		"v2-bad-length-name":    {v2().raw('t').u64(4).u32(1).raw('x').sz(mib).end().b, "ErrBadRecord"},
		"v2-bad-length-protect": {v2().raw('p').u64(8).raw(1).sz(mib).end().b, "ErrBadRecord"},
		"v2-bad-protect-value":  {v2().name('t', "x").raw('p').u64(1).raw(2).sz(mib).end().b, "ErrBadRecord"},
		"v1-stream-v2-records":  {v1().tag('s', 0).u64(8).u64(mib).end().b, "ErrBadTag"},
	}
}

func main() {
	out := flag.String("o", "testdata", "output directory")
	flag.Parse()
	for _, d := range []string{"valid", "invalid"} {
		if err := os.MkdirAll(filepath.Join(*out, d), 0o755); err != nil {
			log.Fatal(err)
		}
	}
	for name, e := range valid() {
		write(filepath.Join(*out, "valid", name+".bin"), e.b)
		write(filepath.Join(*out, "valid", name+".txt"), []byte(e.txt()))
	}
	for name, v := range invalid() {
		write(filepath.Join(*out, "invalid", name+".bin"), v.b)
		write(filepath.Join(*out, "invalid", name+".err"), []byte(v.err+"\n"))
	}
}

func write(path string, b []byte) {
	if err := os.WriteFile(path, b, 0o644); err != nil {
		log.Fatal(err)
	}
}
