package nbdserver

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
)

var (
	errBadMagic   = errors.New("nbdserver: bad magic from client")
	errFlags      = errors.New("nbdserver: unknown client flags")
	errExportName = errors.New("nbdserver: client uses NBD_OPT_EXPORT_NAME, which is not supported (needs NBD_OPT_GO)")
	errAborted    = errors.New("nbdserver: client aborted the negotiation")
)

var be = binary.BigEndian

// negotiate runs the fixed-newstyle handshake and answers options until the
// client picks an export with NBD_OPT_GO (nil, c.serving set), aborts or
// breaks the protocol (an error).
func (c *conn) negotiate() error {
	greet := be.AppendUint64(be.AppendUint64(nil, oldstyleMagic), optMagic)
	if _, err := c.nc.Write(be.AppendUint16(greet, flagFixedNew)); err != nil {
		return err
	}
	var h [optHeaderSize]byte
	if _, err := io.ReadFull(c.br, h[:4]); err != nil { // client flags
		return err
	}
	if f := be.Uint32(h[:4]); f&^clientFlagsKnown != 0 {
		return fmt.Errorf("%w %#x", errFlags, f)
	}
	for c.serving == nil {
		if _, err := io.ReadFull(c.br, h[:]); err != nil {
			return err
		}
		if be.Uint64(h[0:8]) != optMagic {
			return errBadMagic
		}
		id, length := be.Uint32(h[8:12]), be.Uint32(h[12:16])
		if length > maxOptionLen {
			if _, err := io.CopyN(io.Discard, c.br, int64(length)); err != nil {
				return err
			}
			if err := c.optReply(id, repErrTooBig, fmt.Appendf(nil, "nbdserver: option %d has %d bytes, more than %d", id, length, maxOptionLen)); err != nil {
				return err
			}
			continue
		}
		data := make([]byte, length)
		if _, err := io.ReadFull(c.br, data); err != nil {
			return err
		}
		var err error
		switch id {
		case optAbort:
			c.optReply(id, repAck, nil)
			return errAborted
		case optList:
			err = c.list(data)
		case optInfo, optGo:
			err = c.infoOrGo(id, data)
		case optExportName:
			return errExportName
		case optStructuredReply:
			err = c.structuredReply(data)
		case optListMetaContext, optSetMetaContext:
			err = c.metaContext(id, data)
		default:
			err = c.optReply(id, repErrUnsup, nil)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// optReply writes one option reply.
func (c *conn) optReply(id, typ uint32, payload []byte) error {
	h := be.AppendUint64(make([]byte, 0, optReplyHdrSize), replyMagic)
	h = be.AppendUint32(be.AppendUint32(be.AppendUint32(h, id), typ), uint32(len(payload)))
	_, err := (&net.Buffers{h, payload}).WriteTo(c.nc)
	return err
}

// list answers NBD_OPT_LIST with one reply per export, with descriptions.
func (c *conn) list(data []byte) error {
	if len(data) != 0 {
		return c.optReply(optList, repErrInvalid, []byte("nbdserver: NBD_OPT_LIST takes no data"))
	}
	infos, err := c.srv.cat.List()
	if err != nil {
		c.log.Error("listing exports", "err", err)
		return c.optReply(optList, repErrPolicy, []byte(err.Error()))
	}
	for _, e := range infos {
		p := be.AppendUint32(nil, uint32(len(e.Name)))
		p = append(append(p, e.Name...), e.Description...)
		if err := c.optReply(optList, repServer, p); err != nil {
			return err
		}
	}
	return c.optReply(optList, repAck, nil)
}

// infoOrGo answers NBD_OPT_INFO and NBD_OPT_GO: the name is resolved
// through the Catalog; the replies give size, flags, name, description
// and block sizes. After GO the export is served.
func (c *conn) infoOrGo(id uint32, data []byte) error {
	if len(data) < 6 || uint64(len(data)) < 6+uint64(be.Uint32(data)) {
		return c.optReply(id, repErrInvalid, []byte("nbdserver: malformed option"))
	}
	nl := int(be.Uint32(data))
	name := string(data[4 : 4+nl])
	if nreq := int(be.Uint16(data[4+nl:])); len(data) != 6+nl+2*nreq {
		return c.optReply(id, repErrInvalid, []byte("nbdserver: malformed option"))
	}
	o, err := c.resolve(name, id == optGo)
	if err != nil {
		return c.refuse(id, name, err)
	}
	desc := ""
	if d, ok := o.exp.(Describer); ok {
		desc = d.Description()
	}
	canon, stable := name, false
	if cn, ok := o.exp.(Canonical); ok {
		canon = cn.CanonicalName()
		stable = canon == name
	}
	infos := [][]byte{
		be.AppendUint16(be.AppendUint64(be.AppendUint16(nil, infoExport), uint64(o.size)), c.flags(stable)),
		append(be.AppendUint16(nil, infoName), canon...),
		append(be.AppendUint16(nil, infoDescription), desc...),
		be.AppendUint32(be.AppendUint32(be.AppendUint32(be.AppendUint16(nil, infoBlockSize), 1), overlayBlock), maxRequest),
	}
	for _, p := range infos {
		if err := c.optReply(id, repInfo, p); err != nil {
			return err
		}
	}
	if err := c.optReply(id, repAck, nil); err != nil {
		return err
	}
	if id == optGo {
		c.serving = o
		c.log.Info("serving export", "export", name, "canonical", canon, "size", o.size, "cow", o.ov != nil)
	}
	return nil
}

// refuse answers an option naming an export that cannot be opened.
func (c *conn) refuse(id uint32, name string, err error) error {
	if errors.Is(err, ErrNotFound) {
		c.log.Info("unknown export requested", "export", name, "err", err)
		return c.optReply(id, repErrUnknown, []byte(err.Error()))
	}
	// The server cannot serve it (the catalog cannot be read, no overlay
	// can be made): not the client's mistake, and the message says why
	// (NBD has no error for a failing server).
	c.log.Error("opening export", "export", name, "err", err)
	return c.optReply(id, repErrPolicy, []byte(err.Error()))
}

// flags are the transmission flags of an export; stable says the client
// named it by its canonical name (Canonical), so that every connection
// asking for that name gets the same bytes.
func (c *conn) flags(stable bool) uint16 {
	f := uint16(flagHasFlags)
	switch {
	case c.srv.opts.COW:
		// Each connection has its own overlay, so connections do not
		// see each other's writes: no multi-conn.
		f |= flagSendFlush
	case stable:
		f |= flagReadOnly | flagCanMultiConn
	default:
		f |= flagReadOnly
	}
	return f
}

// resolve opens name through the catalog, reusing the export of a previous
// INFO for the same name. For GO in COW mode it adds the overlay.
func (c *conn) resolve(name string, goOpt bool) (*opened, error) {
	if c.cand == nil || c.cand.name != name {
		exp, err := c.srv.cat.Open(name)
		if err != nil {
			return nil, err
		}
		size := exp.Size()
		if size < 0 {
			exp.Close()
			return nil, fmt.Errorf("nbdserver: export %q has negative size %d", name, size)
		}
		c.closeExport()
		c.cand = &opened{name: name, exp: exp, size: size}
	}
	if goOpt && c.srv.opts.COW && c.cand.ov == nil {
		ov, err := newOverlay(c.srv.opts.TempDir, c.cand.exp, c.cand.size)
		if err != nil {
			return nil, err
		}
		c.cand.ov = ov
	}
	return c.cand, nil
}

// structuredReply answers NBD_OPT_STRUCTURED_REPLY.
func (c *conn) structuredReply(data []byte) error {
	if len(data) != 0 {
		return c.optReply(optStructuredReply, repErrInvalid, []byte("nbdserver: NBD_OPT_STRUCTURED_REPLY takes no data"))
	}
	c.structured = true
	return c.optReply(optStructuredReply, repAck, nil)
}

// metaContext answers NBD_OPT_LIST_META_CONTEXT and NBD_OPT_SET_META_CONTEXT.
// The one context offered is base:allocation, and only for read-only
// exports: a COW overlay would make the zero map wrong.
func (c *conn) metaContext(id uint32, data []byte) error {
	if id == optSetMetaContext {
		c.metaOn = false // a SET replaces the selection even when it fails
	}
	if !c.structured {
		return c.optReply(id, repErrInvalid, []byte("nbdserver: negotiate structured replies first"))
	}
	name, queries, ok := parseMetaQuery(data)
	if !ok {
		return c.optReply(id, repErrInvalid, []byte("nbdserver: malformed option"))
	}
	if _, err := c.resolve(name, false); err != nil { // kept for a GO of the same name
		return c.refuse(id, name, err)
	}
	want := id == optListMetaContext && len(queries) == 0
	for _, q := range queries {
		if q == metaAllocation || (id == optListMetaContext && q == "base:") {
			want = true
		}
	}
	if want && !c.srv.opts.COW {
		ctxID := uint32(0) // LIST: reserved, zero
		if id == optSetMetaContext {
			ctxID = metaAllocationID
			c.metaOn, c.metaName = true, name
		}
		if err := c.optReply(id, repMetaContext, append(be.AppendUint32(nil, ctxID), metaAllocation...)); err != nil {
			return err
		}
	}
	return c.optReply(id, repAck, nil)
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
