package main

import "strings"

// vector is one test stream and what a reader must make of it.
type vector struct {
	name, desc string
	b          *builder
	err        string // sentinel name; empty for a valid stream
	failsIn    string // "header" or "records" for an invalid stream
	ok         int    // invalid streams: records returned before the error
}

const (
	kib = 1 << 10
	mib = 1 << 20
	gib = 1 << 30
)

func validVectors() []vector {
	valid := func(name, desc string, b *builder) vector {
		return vector{name: "valid-" + name, desc: desc, b: b.end(nil)}
	}
	return []vector{
		valid("empty", "full stream of an image of size 0",
			newBuilder(hdr{kind: kindFull, size: 0, source: "file:/srv/vm/empty.img"})),
		valid("no-records", "full stream of a 1 GiB image that is all zero, so no record at all",
			newBuilder(hdr{kind: kindFull, size: gib, source: "file:/srv/vm/blank.img"})),
		valid("full", "full stream: data and zero records, adjacent and with gaps, odd lengths, "+
			"last record ending at the image size, non-ASCII source",
			newBuilder(hdr{kind: kindFull, size: mib, source: "rbd:pool/vm-ü-1.root",
				snapshot: "backy-Fx8kQ2"}).
				dataRec(0, payload(1, 4*kib)).
				zeroRec(4*kib, 8*kib).
				dataRec(64*kib, payload(2, 12345)).
				dataRec(64*kib+12345, payload(3, 3)).
				zeroRec(512*kib, 256*kib).
				dataRec(mib-512, payload(4, 512))),
		valid("differential", "differential stream relative to a base snapshot",
			newBuilder(hdr{kind: kindDifferential, size: 2 * mib, source: "rbd:pool/vm-2.root",
				snapshot: "backy-Ab3dE6", base: "backy-Zy9xW8"}).
				dataRec(8*kib, payload(5, 4*kib)).
				zeroRec(mib, 512*kib).
				dataRec(2*mib-4*kib, payload(6, 4*kib))),
		valid("sample", "sample stream: scattered 4 KiB ranges of an 8 GiB image",
			newBuilder(hdr{kind: kindSample, size: 8 * gib, source: "file:/dev/vg0/vm-3",
				snapshot: "backy-Sm4pL3"}).
				dataRec(0, payload(7, 4*kib)).
				dataRec(gib, payload(8, 4*kib)).
				zeroRec(4*gib, 4*kib).
				dataRec(8*gib-4*kib, payload(9, 4*kib))),
		valid("odd-size", "image size 10007, not a multiple of 4 KiB; the last record ends at it",
			newBuilder(hdr{kind: kindFull, size: 10007, source: "file:/srv/vm/odd.img"}).
				dataRec(0, payload(10, 4*kib)).
				zeroRec(4*kib, 4*kib).
				dataRec(8*kib, payload(11, 10007-8*kib))),
		valid("tiny-records", "records of one byte each, data and zero alternating and adjacent",
			newBuilder(hdr{kind: kindFull, size: 8, source: "file:/srv/vm/tiny.img"}).
				dataRec(0, []byte{0x01}).
				zeroRec(1, 1).
				dataRec(2, []byte{0xff}).
				zeroRec(3, 1).
				dataRec(7, []byte{0x80})),
		valid("huge-zero", "largest image (2^60 bytes) named by one zero record: "+
			"a reader must not allocate its length",
			newBuilder(hdr{kind: kindFull, size: 1 << 60, source: "rbd:pool/huge"}).
				zeroRec(0, 1<<60)),
		valid("frozen", "full stream with a consistency block: frozen for 1.5 s",
			newBuilder(hdr{kind: kindFull, flags: 1, consistency: 2, frozen: 1500000000, size: 8 * kib,
				source: "rbd:pool/vm-4.root", snapshot: "backy-Fz7aQ1"}).
				dataRec(0, payload(13, 4*kib))),
		valid("crash-fallback", "differential stream with a consistency block: crash, with the reason of the fallback",
			newBuilder(hdr{kind: kindDifferential, flags: 1, consistency: 1, size: 8 * kib,
				source: "rbd:pool/vm-5.root", snapshot: "backy-Cr2bW5", base: "backy-Cr1aW4",
				reason: "freeze failed: \"fsfreeze -f /\" exit status 1"}).
				zeroRec(0, 4*kib)),
		valid("long-names", "differential stream with source, snapshot and base of 1024 bytes each",
			newBuilder(hdr{kind: kindDifferential, size: 4 * kib,
				source:   "rbd:" + strings.Repeat("p", 1020),
				snapshot: strings.Repeat("ü", 512),
				base:     strings.Repeat("b", 1024)}).
				dataRec(0, payload(12, 100))),
	}
}
