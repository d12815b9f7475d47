package nbdserver

import (
	"net"
)

// Structured replies and block status, which go-nbd does not know: the
// session negotiates them itself (NBD_OPT_STRUCTURED_REPLY,
// NBD_OPT_LIST/SET_META_CONTEXT), answers NBD_CMD_BLOCK_STATUS, and rewrites
// go-nbd's simple read replies into structured chunks. That lets a read of
// zeros go out as a 12-byte hole chunk instead of its bytes, and lets
// clients learn where the zeros are without reading them.

// maxDescriptors bounds one block status reply; clients ask again for the
// rest.
const maxDescriptors = 1024

// maxExtent keeps a descriptor's length inside its 32 bits.
const maxExtent = 1 << 30

// structuredReply answers NBD_OPT_STRUCTURED_REPLY.
func (s *session) structuredReply(data []byte) error {
	if len(data) != 0 {
		return s.optReply(optStructuredReply, repErrInvalid, []byte("nbdserver: NBD_OPT_STRUCTURED_REPLY takes no data"))
	}
	s.structured = true
	return s.optReply(optStructuredReply, repAck, nil)
}

// metaContext answers NBD_OPT_LIST_META_CONTEXT and NBD_OPT_SET_META_CONTEXT.
// The one context offered is base:allocation, and only for read-only
// exports: a COW overlay would make the zero map wrong.
func (s *session) metaContext(id uint32, data []byte) error {
	if id == optSetMetaContext {
		s.metaOn = false // a SET replaces the selection even when it fails
	}
	if !s.structured {
		return s.optReply(id, repErrInvalid, []byte("nbdserver: negotiate structured replies first"))
	}
	name, queries, ok := parseMetaQuery(data)
	if !ok {
		return s.optReply(id, repErrInvalid, []byte("nbdserver: malformed option"))
	}
	want := false
	for _, q := range queries {
		if q == metaAllocation || (id == optListMetaContext && q == "base:") {
			want = true
		}
	}
	if id == optListMetaContext && len(queries) == 0 {
		want = true
	}
	if want && !s.srv.opts.COW {
		ctxID := uint32(0) // LIST: reserved, zero
		if id == optSetMetaContext {
			ctxID = metaAllocationID
			s.metaOn, s.metaName = true, name
		}
		if err := s.optReply(id, repMetaContext, append(be.AppendUint32(nil, ctxID), metaAllocation...)); err != nil {
			return err
		}
	}
	return s.optReply(id, repAck, nil)
}

// parseMetaQuery splits the data of a META_CONTEXT option: export name,
// then a count of queries, each a length-prefixed string.
func parseMetaQuery(d []byte) (name string, queries []string, ok bool) {
	str := func() (string, bool) {
		if len(d) < 4 || uint64(len(d)-4) < uint64(be.Uint32(d)) {
			return "", false
		}
		n := int(be.Uint32(d))
		v := string(d[4 : 4+n])
		d = d[4+n:]
		return v, true
	}
	if name, ok = str(); !ok || len(d) < 4 {
		return "", nil, false
	}
	count := be.Uint32(d)
	d = d[4:]
	for range count {
		q, ok := str()
		if !ok {
			return "", nil, false
		}
		queries = append(queries, q)
	}
	return name, queries, len(d) == 0
}

// blockStatus answers NBD_CMD_BLOCK_STATUS for base:allocation from the
// export's Mapper; an export without one is reported as all data, which
// the protocol allows.
func (s *session) blockStatus() error {
	r := s.cur
	if !s.metaOn || s.serving == nil || s.metaName != s.serving.name {
		return s.simpleReply(r.handle, errnoEINVAL)
	}
	size := s.serving.be.size
	if r.length == 0 || r.offset >= uint64(size) || uint64(r.length) > uint64(size)-r.offset {
		return s.simpleReply(r.handle, errnoEINVAL)
	}
	m, _ := s.serving.exp.(Mapper)
	off, end := int64(r.offset), int64(r.offset)+int64(r.length)
	p := be.AppendUint32(nil, metaAllocationID)
	for n := 0; off < end && n < maxDescriptors; n++ {
		zero, run := false, min(size-off, maxExtent)
		if m != nil {
			zero, run = m.Extent(off, run)
			run = max(1, min(run, size-off, maxExtent))
		}
		if r.flags&cmdFlagReqOne != 0 {
			run = min(run, end-off)
			n = maxDescriptors
		}
		status := uint32(0)
		if zero {
			status = stateHole | stateZero
		}
		p = be.AppendUint32(be.AppendUint32(p, uint32(run)), status)
		off += run
	}
	return s.chunk(r.handle, replyTypeBlockStatus, p)
}

// chunk sends one final structured reply chunk.
func (s *session) chunk(handle uint64, typ uint16, payload ...[]byte) error {
	n := 0
	for _, p := range payload {
		n += len(p)
	}
	h := s.chunkHeader(handle, typ, n)
	bufs := net.Buffers{h}
	for _, p := range payload {
		bufs = append(bufs, p)
	}
	_, err := bufs.WriteTo(s.Conn)
	return err
}

func (s *session) chunkHeader(handle uint64, typ uint16, length int) []byte {
	h := make([]byte, structuredHeaderSize, structuredHeaderSize+12)
	be.PutUint32(h[0:4], structuredReplyMagic)
	be.PutUint16(h[4:6], replyFlagDone)
	be.PutUint16(h[6:8], typ)
	be.PutUint64(h[8:16], handle)
	be.PutUint32(h[16:20], uint32(length))
	return h
}

// readReply sends the structured reply of a read whose bytes are p (all of
// them, or the first piece), or of a failed read when errno is set.
func (s *session) readReply(p []byte, errno uint32) error {
	r := s.cur
	switch {
	case errno != 0:
		// error, then a message length of 0 and no message
		return s.chunk(r.handle, replyTypeError, be.AppendUint16(be.AppendUint32(nil, errno), 0))
	case r.length == 0:
		return s.chunk(r.handle, replyTypeNone)
	case len(p) == int(r.length) && isZero(p):
		h := s.chunkHeader(r.handle, replyTypeOffsetHole, 12)
		h = be.AppendUint32(be.AppendUint64(h, r.offset), r.length)
		_, err := s.Conn.Write(h)
		return err
	}
	h := s.chunkHeader(r.handle, replyTypeOffsetData, 8+int(r.length))
	h = be.AppendUint64(h, r.offset)
	_, err := (&net.Buffers{h, p}).WriteTo(s.Conn)
	return err
}

var zeroPage [64 << 10]byte

func isZero(p []byte) bool {
	for len(p) > 0 {
		n := min(len(p), len(zeroPage))
		if string(p[:n]) != string(zeroPage[:n]) {
			return false
		}
		p = p[n:]
	}
	return true
}
