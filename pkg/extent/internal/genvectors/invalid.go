package main

import "strings"

// invalidVectors are streams that break exactly one rule each; everything
// else about them (checksums included) is right, so that the rule under
// test is the one that must fire.
func invalidVectors() []vector {
	full := func() *builder {
		return newBuilder(hdr{kind: kindFull, size: 64 * kib, source: "file:/srv/vm/bad.img",
			snapshot: "backy-Bd0000"})
	}
	// two returns full() with two valid records: data 0+4 KiB, zero 8+4 KiB.
	two := func() *builder {
		return full().dataRec(0, payload(20, kib)).zeroRec(8*kib, 4*kib)
	}
	inHeader := func(name, desc, err string, b *builder) vector {
		return vector{name: "invalid-" + name, desc: desc, b: b, err: err, failsIn: "header"}
	}
	inRecords := func(name, desc, err string, ok int, b *builder) vector {
		return vector{name: "invalid-" + name, desc: desc, b: b, err: err, failsIn: "records", ok: ok}
	}
	withMagic := func(m string) *builder {
		return newBuilder(hdr{magic: m, kind: kindFull, size: 4 * kib}).end(nil)
	}
	return []vector{
		inHeader("empty-stream", "no bytes at all: the producer died before writing anything",
			"ErrTruncated", &builder{}),
		inHeader("bad-magic", "the magic after a text-mode channel turned CR LF into LF",
			"ErrBadMagic", withMagic("\x89BXS\n\x1a\n\x00")),
		inHeader("bad-magic-short", "a short text, shorter than the magic",
			"ErrBadMagic", (&builder{}).raw([]byte("hello\n"))),
		inHeader("unknown-version", "version 2, header checksum right",
			"ErrVersion", newBuilder(hdr{version: 2, kind: kindFull, size: 4 * kib}).end(nil)),
		inHeader("bad-header-checksum", "a bit of the source name flipped",
			"ErrChecksum", two().end(nil).flip(23)),
		inHeader("unknown-kind", "kind 4",
			"ErrBadHeader", newBuilder(hdr{kind: 4, size: 4 * kib}).end(nil)),
		inHeader("nonzero-flags", "flags 2, a flag this version does not know",
			"ErrBadHeader", newBuilder(hdr{kind: kindFull, flags: 2, size: 4 * kib}).end(nil)),
		inHeader("unknown-consistency", "consistency block with consistency 4",
			"ErrBadHeader", newBuilder(hdr{kind: kindFull, flags: 1, consistency: 4, size: 4 * kib}).end(nil)),
		inHeader("reason-too-long", "consistency block with a reason of 1025 bytes",
			"ErrBadHeader", newBuilder(hdr{kind: kindFull, flags: 1, consistency: 1, size: 4 * kib,
				reason: strings.Repeat("r", 1025)}).end(nil)),
		inHeader("image-too-large", "image size 2^60+1",
			"ErrBadHeader", newBuilder(hdr{kind: kindFull, size: 1<<60 + 1}).end(nil)),
		inHeader("name-too-long", "a source name of 1025 bytes",
			"ErrBadHeader", newBuilder(hdr{kind: kindFull, size: 4 * kib,
				source: strings.Repeat("s", 1025)}).end(nil)),
		inHeader("differential-without-base", "a differential stream with an empty base",
			"ErrBadHeader", newBuilder(hdr{kind: kindDifferential, size: 4 * kib,
				snapshot: "backy-Bd0001"}).end(nil)),
		inHeader("full-with-base", "a full stream that names a base",
			"ErrBadHeader", newBuilder(hdr{kind: kindFull, size: 4 * kib, base: "backy-Bd0002"}).end(nil)),

		inRecords("bad-record-checksum", "a payload byte of the second data record flipped",
			"ErrChecksum", 2, two().dataRec(16*kib, payload(21, kib)).flip(-10).end(nil)),
		inRecords("bad-zero-checksum", "the checksum of a zero record flipped",
			"ErrChecksum", 1, two().flip(-1).end(nil)),
		inRecords("bad-end-checksum", "a bit of the END record's own checksum flipped",
			"ErrChecksum", 2, two().end(nil).flip(-1)),
		inRecords("record-beyond-image", "a data record that crosses the image size",
			"ErrBeyondImage", 2, two().dataRec(64*kib-100, payload(22, 200)).end(nil)),
		inRecords("record-offset-overflow", "a zero record whose offset+length wraps around 2^64",
			"ErrBeyondImage", 2, two().zeroRec(1<<64-4*kib, 8*kib).end(nil)),
		inRecords("overlapping-records", "a data record that starts inside the previous zero record",
			"ErrOrder", 2, two().dataRec(12*kib-1, payload(23, kib)).end(nil)),
		inRecords("descending-records", "a data record before the previous one",
			"ErrOrder", 2, two().dataRec(4*kib, payload(24, kib)).end(nil)),
		inRecords("duplicate-record", "the same zero record twice",
			"ErrOrder", 2, two().zeroRec(8*kib, 4*kib).end(nil)),
		inRecords("data-record-too-long", "a data record header claiming 4 MiB + 1 bytes; "+
			"the payload is absent because a reader must refuse before reading it",
			"ErrTooLong", 2, two().record(typeData, [3]byte{}, 16*kib, 4*mib+1, nil)),
		inRecords("empty-data-record", "a data record of length 0",
			"ErrBadRecord", 2, two().dataRec(16*kib, nil).end(nil)),
		inRecords("empty-zero-record", "a zero record of length 0",
			"ErrBadRecord", 2, two().zeroRec(16*kib, 0).end(nil)),
		inRecords("unknown-record-type", "a record of type 'X' with a right checksum",
			"ErrBadRecord", 2, two().record('X', [3]byte{}, 16*kib, 4*kib, nil).end(nil)),
		inRecords("nonzero-reserved", "a data record with a reserved byte set, checksum right",
			"ErrBadRecord", 2, two().record(typeData, [3]byte{0, 1, 0}, 16*kib, 4, []byte("abcd")).end(nil)),
		inRecords("missing-end", "every record intact but no END record: a producer that stopped",
			"ErrTruncated", 2, two()),
		inRecords("truncated-payload", "the stream stops inside a data record's payload",
			"ErrTruncated", 2, two().dataRec(16*kib, payload(25, kib)).cut(1000)),
		inRecords("truncated-end", "the stream stops inside the END record",
			"ErrTruncated", 2, two().end(nil).cut(1)),
		inRecords("bytes-after-end", "a newline after a valid END record",
			"ErrTrailingData", 2, two().end(nil).raw([]byte("\n"))),
		inRecords("stream-after-end", "two valid streams one after the other",
			"ErrTrailingData", 2, two().end(nil).raw(two().end(nil).b)),
		inRecords("end-record-count", "END claims one record more than were sent",
			"ErrBadEnd", 2, two().end(func(f *endFields) { f.count++ })),
		inRecords("end-data-bytes", "END claims one data byte less than was sent",
			"ErrBadEnd", 2, two().end(func(f *endFields) { f.data-- })),
		inRecords("end-zero-bytes", "END claims other zero bytes than were sent",
			"ErrBadEnd", 2, two().end(func(f *endFields) { f.zero += 4 * kib })),
		inRecords("end-chain", "END's chain checksum does not match the records "+
			"(as when a record was dropped and the counts fixed up)",
			"ErrBadEnd", 2, two().end(func(f *endFields) { f.chain ^= 1 })),
		inRecords("end-reserved", "END with a reserved byte set, END checksum right",
			"ErrBadEnd", 2, two().end(func(f *endFields) { f.reserved2 = 1 })),
	}
}
