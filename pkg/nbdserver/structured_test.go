package nbdserver

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"testing"

	"github.com/backy/backy/pkg/extent"
)

// mappedCatalog wraps a fileCatalog so its exports are Mappers that report
// zeros wherever the file has whole zero 64 KiB blocks.
type mappedCatalog struct{ *fileCatalog }

type mappedExport struct{ *fileExport }

func (c mappedCatalog) Open(name string) (Export, error) {
	e, err := c.fileCatalog.Open(name)
	if err != nil {
		return nil, err
	}
	return mappedExport{e.(*fileExport)}, nil
}

const mapBlock = 64 << 10

func (e mappedExport) Extent(off, max int64) (bool, int64) {
	blockZero := func(b int64) bool {
		p := make([]byte, min(mapBlock, e.size-b*mapBlock))
		e.f.ReadAt(p, b*mapBlock)
		return extent.IsZero(p)
	}
	b := off / mapBlock
	zero := blockZero(b)
	end := (b + 1) * mapBlock
	for end-off < max && end < e.size && blockZero(end/mapBlock) == zero {
		end += mapBlock
	}
	return zero, min(end-off, max, e.size-off)
}

type chunkMsg struct {
	flags, typ uint16
	payload    []byte
}

// chunks reads structured reply chunks for handle up to the final one.
func (rc *rawClient) chunks(handle uint64) ([]chunkMsg, error) {
	var out []chunkMsg
	for {
		var h [20]byte
		if _, err := io.ReadFull(rc.r, h[:]); err != nil {
			return out, err
		}
		if m := binary.BigEndian.Uint32(h[0:4]); m != structuredReplyMagic {
			return out, fmt.Errorf("reply magic %#x, want a structured reply", m)
		}
		if got := binary.BigEndian.Uint64(h[8:16]); got != handle {
			return out, fmt.Errorf("reply for handle %d, want %d", got, handle)
		}
		c := chunkMsg{flags: binary.BigEndian.Uint16(h[4:6]), typ: binary.BigEndian.Uint16(h[6:8]),
			payload: make([]byte, binary.BigEndian.Uint32(h[16:20]))}
		if _, err := io.ReadFull(rc.r, c.payload); err != nil {
			return out, err
		}
		out = append(out, c)
		if c.flags&replyFlagDone != 0 {
			return out, nil
		}
	}
}

func metaData(name string, queries ...string) []byte {
	d := binary.BigEndian.AppendUint32(nil, uint32(len(name)))
	d = append(d, name...)
	d = binary.BigEndian.AppendUint32(d, uint32(len(queries)))
	for _, q := range queries {
		d = binary.BigEndian.AppendUint32(d, uint32(len(q)))
		d = append(d, q...)
	}
	return d
}

// structuredGo negotiates structured replies and base:allocation for name
// and enters transmission.
func structuredGo(t *testing.T, addr, name string) *rawClient {
	t.Helper()
	rc := dialRaw(t, addr)
	if rs, err := rc.opt(optStructuredReply, nil); err != nil || rs[0].typ != repAck {
		t.Fatalf("STRUCTURED_REPLY: %v %v", rs, err)
	}
	rs, err := rc.opt(optSetMetaContext, metaData(name, "base:allocation", "x-unknown:thing"))
	if err != nil || len(rs) != 2 || rs[0].typ != repMetaContext || string(rs[0].data[4:]) != metaAllocation || rs[1].typ != repAck {
		t.Fatalf("SET_META_CONTEXT: %v %v", rs, err)
	}
	if typ, msg, err := rc.goExport(name); err != nil || typ != repAck {
		t.Fatalf("GO: %#x %q %v", typ, msg, err)
	}
	return rc
}

func TestStructuredReads(t *testing.T) {
	cat, addr, data := protoSetup(t, Options{})
	cat.fault("aaaa1111", 2<<20+5, 1)
	rc := structuredGo(t, addr, "aaaa1111")

	// makeImage zeroes 256 KiB at 1 MiB: a read inside is a hole chunk.
	for _, tc := range []struct {
		off, n uint32
		typ    uint16
	}{{0, 4096, replyTypeOffsetData}, {1<<20 + 4096, 65536, replyTypeOffsetHole}, {1<<20 - 10, 100, replyTypeOffsetData}} {
		h, _ := rc.send(cmdRead, uint64(tc.off), tc.n, nil)
		cs, err := rc.chunks(h)
		if err != nil || len(cs) != 1 || cs[0].typ != tc.typ || cs[0].flags != replyFlagDone {
			t.Fatalf("read %d+%d: %+v %v", tc.off, tc.n, cs, err)
		}
		p := cs[0].payload
		if binary.BigEndian.Uint64(p) != uint64(tc.off) {
			t.Errorf("read %d+%d: chunk at offset %d", tc.off, tc.n, binary.BigEndian.Uint64(p))
		}
		want := data[tc.off : tc.off+tc.n]
		if tc.typ == replyTypeOffsetHole {
			if binary.BigEndian.Uint32(p[8:]) != tc.n || !extent.IsZero(want) {
				t.Errorf("hole of %d bytes for %d zero bytes", binary.BigEndian.Uint32(p[8:]), tc.n)
			}
		} else if !bytes.Equal(p[8:], want) {
			t.Errorf("read %d+%d: wrong bytes", tc.off, tc.n)
		}
	}

	// A failed read is one error chunk, and the connection carries on.
	h, _ := rc.send(cmdRead, 2<<20, 8192, nil)
	cs, err := rc.chunks(h)
	if err != nil || len(cs) != 1 || cs[0].typ != replyTypeError || binary.BigEndian.Uint32(cs[0].payload) != errnoEIO {
		t.Fatalf("failed read: %+v %v", cs, err)
	}
	if got, errno, err := structuredRead(rc, 3<<20, 123); err != nil || errno != 0 || !bytes.Equal(got, data[3<<20:3<<20+123]) {
		t.Errorf("read after a failed one: %v %v", errno, err)
	}
	// Other commands keep simple replies.
	if errno, err := rc.cmd(cmdFlush, 0, 0, nil); err != nil || errno != 0 {
		t.Errorf("flush: %d %v", errno, err)
	}
}

func structuredRead(rc *rawClient, off uint64, n uint32) ([]byte, uint32, error) {
	h, err := rc.send(cmdRead, off, n, nil)
	if err != nil {
		return nil, 0, err
	}
	cs, err := rc.chunks(h)
	if err != nil {
		return nil, 0, err
	}
	if cs[0].typ == replyTypeError {
		return nil, binary.BigEndian.Uint32(cs[0].payload), nil
	}
	return cs[0].payload[8:], 0, nil
}

// descriptors sends BLOCK_STATUS and returns "length:status" pairs.
func descriptors(t *testing.T, rc *rawClient, flags uint16, off uint64, n uint32) []string {
	t.Helper()
	rc.handle++
	h := binary.BigEndian.AppendUint32(nil, requestMagic)
	h = binary.BigEndian.AppendUint16(h, flags)
	h = binary.BigEndian.AppendUint16(h, cmdBlockStatus)
	h = binary.BigEndian.AppendUint64(h, rc.handle)
	h = binary.BigEndian.AppendUint64(h, off)
	h = binary.BigEndian.AppendUint32(h, n)
	if _, err := rc.c.Write(h); err != nil {
		t.Fatal(err)
	}
	cs, err := rc.chunks(rc.handle)
	if err != nil || len(cs) != 1 || cs[0].typ != replyTypeBlockStatus {
		t.Fatalf("BLOCK_STATUS %d+%d: %+v %v", off, n, cs, err)
	}
	p := cs[0].payload
	if binary.BigEndian.Uint32(p) != metaAllocationID {
		t.Fatalf("context id %d", binary.BigEndian.Uint32(p))
	}
	var out []string
	for p = p[4:]; len(p) >= 8; p = p[8:] {
		out = append(out, fmt.Sprintf("%d:%d", binary.BigEndian.Uint32(p), binary.BigEndian.Uint32(p[4:])))
	}
	return out
}

func TestBlockStatus(t *testing.T) {
	dir := t.TempDir()
	cat := newFileCatalog()
	p, _ := makeImage(t, dir, "r1", 3<<20+123, 1) // zeros at [1 MiB, 1.25 MiB)
	cat.add("aaaa1111", p, "")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- New(mappedCatalog{cat}, Options{Logger: startLogger(t)}).Serve(ctx, ln) }()
	t.Cleanup(func() { cancel(); <-done })
	addr := ln.Addr().String()
	rc := structuredGo(t, addr, "aaaa1111")

	const mib = 1 << 20
	got := fmt.Sprint(descriptors(t, rc, 0, 0, 3*mib+123))
	want := fmt.Sprint([]string{"1048576:0", "262144:3", fmt.Sprint(2*mib-262144+123) + ":0"})
	if got != want {
		t.Errorf("whole image: %s, want %s", got, want)
	}
	// From inside the hole, the final extent may run past the request.
	if got := fmt.Sprint(descriptors(t, rc, 0, mib+4096, 4096)); got != "[258048:3]" {
		t.Errorf("inside the hole: %s", got)
	}
	if got := fmt.Sprint(descriptors(t, rc, cmdFlagReqOne, mib+4096, 4096)); got != "[4096:3]" {
		t.Errorf("REQ_ONE: %s", got)
	}
	if errno, err := rc.cmd(cmdBlockStatus, 3*mib, 1000, nil); err != nil || errno != errnoEINVAL {
		t.Errorf("BLOCK_STATUS past the end: %d %v", errno, err)
	}
}

// TestBlockStatusNegotiation: contexts need structured replies, the same
// export name as GO, and a read-only server; an export without a Mapper
// reads as all data.
func TestBlockStatusNegotiation(t *testing.T) {
	_, addr, _ := protoSetup(t, Options{})
	rc := dialRaw(t, addr)
	if rs, _ := rc.opt(optSetMetaContext, metaData("aaaa1111", metaAllocation)); rs[0].typ != repErrInvalid {
		t.Errorf("SET_META_CONTEXT before STRUCTURED_REPLY: %#x", rs[0].typ)
	}
	rc.opt(optStructuredReply, nil)
	for _, q := range [][]string{nil, {"base:"}, {metaAllocation}} {
		rs, err := rc.opt(optListMetaContext, metaData("", q...))
		if err != nil || len(rs) != 2 || string(rs[0].data[4:]) != metaAllocation {
			t.Errorf("LIST_META_CONTEXT %q: %v %v", q, rs, err)
		}
	}
	rs, _ := rc.opt(optSetMetaContext, metaData("aaaa1111", "base:"))
	if len(rs) != 1 || rs[0].typ != repAck {
		t.Errorf("SET_META_CONTEXT base: selects nothing: %v", rs)
	}
	rc.opt(optSetMetaContext, metaData("bbbb2222", metaAllocation))
	rc.goExport("aaaa1111")
	if errno, err := rc.cmd(cmdBlockStatus, 0, 4096, nil); err != nil || errno != errnoEINVAL {
		t.Errorf("BLOCK_STATUS for a context of another export: %d %v", errno, err)
	}

	rc = structuredGo(t, addr, "") // the default export, by its empty name
	if got := fmt.Sprint(descriptors(t, rc, 0, 0, 1<<20)); got != "[1048576:0]" {
		t.Errorf("export without a Mapper: %s", got)
	}

	_, addr, _ = protoSetup(t, Options{COW: true})
	rc = dialRaw(t, addr)
	rc.opt(optStructuredReply, nil)
	if rs, _ := rc.opt(optSetMetaContext, metaData("aaaa1111", metaAllocation)); len(rs) != 1 || rs[0].typ != repAck {
		t.Errorf("COW: SET_META_CONTEXT selected %v", rs)
	}
}
