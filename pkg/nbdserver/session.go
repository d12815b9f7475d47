package nbdserver

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"

	"github.com/pojntfx/go-nbd/pkg/server"
)

var (
	errBadMagic   = errors.New("nbdserver: bad magic from client")
	errOptionSize = errors.New("nbdserver: negotiation option too long")
	errExportName = errors.New("nbdserver: client uses NBD_OPT_EXPORT_NAME, which is not supported (needs NBD_OPT_GO)")
)

var be = binary.BigEndian

type phase int

const (
	phaseClientFlags phase = iota
	phaseOptions
	phaseTransmission
)

type request struct {
	flags  uint16
	typ    uint16
	handle uint64
	offset uint64
	length uint32
}

type stats struct {
	reads, writes, errors int64
	readBytes, writeBytes int64
}

// opened is an export a client has asked for by name on this connection.
type opened struct {
	name string
	exp  Export
	be   *backend
}

func (o *opened) close() error {
	var err error
	if o.be.ov != nil {
		err = o.be.ov.Close()
	}
	return errors.Join(o.exp.Close(), err)
}

// session is one client connection. It sits between the socket and go-nbd's
// server.Handle as a net.Conn and understands the protocol's framing in both
// directions:
//
//   - client to library: it answers NBD_OPT_LIST itself (go-nbd packs all
//     names into one reply, which clients read as one name), resolves the
//     names of NBD_OPT_INFO/GO through the Catalog (refusing unknown ones
//     itself, with a message) before go-nbd sees them, bounds option sizes,
//     and answers NBD_CMD_FLUSH and commands go-nbd does not know;
//   - library to client: it sets the transmission flags go-nbd gets wrong
//     (read-only, flush, multi-conn), holds back each read's success header
//     until the data is known good, turning it into an error reply when the
//     backend failed, and sends header and data in one write;
//   - structured replies and block status, which go-nbd lacks, are
//     negotiated and answered here (structured.go): reads then go out as
//     structured chunks, zeros as holes, and NBD_CMD_BLOCK_STATUS reports
//     the zero ranges of exports that implement Mapper.
//
// go-nbd runs one goroutine per connection that alternates between reading a
// request and writing its reply, so no locking is needed here.
type session struct {
	srv *Server
	net.Conn
	br   *bufio.Reader
	log  *slog.Logger
	slot []*server.Export // the one export go-nbd can find; set per INFO/GO

	// client to library
	inPhase phase
	inBuf   []byte
	in      []byte // bytes ready for go-nbd
	payload int64  // write payload still to pass through

	// library to client
	negotiating bool
	greeted     int
	obuf        []byte
	cur         request
	reqErr      uint32 // NBD errno the backend recorded for cur
	rhdr        [replyHeaderSize]byte
	rn          int
	held        bool  // rhdr is a read's success header not yet sent
	dataLeft    int64 // read payload bytes still to come from go-nbd
	swallow     bool  // the read failed: drop its payload

	cand    *opened // resolved by the last INFO or GO
	serving *opened // after GO: the export being served
	stats   stats

	structured bool   // NBD_OPT_STRUCTURED_REPLY was negotiated
	metaOn     bool   // base:allocation was selected ...
	metaName   string // ... for this export name
}

func newSession(srv *Server, c net.Conn, log *slog.Logger) *session {
	return &session{
		srv:         srv,
		Conn:        c,
		br:          bufio.NewReaderSize(c, 64<<10),
		log:         log,
		slot:        []*server.Export{{Name: "\x00unset", Backend: nil}},
		negotiating: true,
	}
}

// close releases the connection and the export.
func (s *session) close() error {
	err := s.Conn.Close()
	if s.cand != nil {
		if cerr := s.cand.close(); cerr != nil {
			s.log.Warn("closing export", "export", s.cand.name, "err", cerr)
		}
		s.cand = nil
	}
	return err
}

// fail records the error of the current request; the reply filter sends it.
func (s *session) fail(errno uint32, err error) {
	if s.reqErr == 0 {
		s.reqErr = errno
	}
	s.stats.errors++
	s.log.Error("request failed", "err", err)
}

func (s *session) flags() uint16 {
	f := uint16(flagHasFlags)
	if s.srv.opts.COW {
		// Each connection has its own overlay, so connections do not
		// see each other's writes: no multi-conn.
		f |= flagSendFlush
	} else {
		f |= flagReadOnly | flagCanMultiConn
	}
	return f
}

// Read hands go-nbd the client's bytes, after deciding what to do with each
// option or request.
func (s *session) Read(p []byte) (int, error) {
	for len(s.in) == 0 && s.payload == 0 {
		var err error
		switch s.inPhase {
		case phaseClientFlags:
			err = s.readForward(clientFlagsSize)
			s.inPhase = phaseOptions
		case phaseOptions:
			err = s.nextOption()
		default:
			err = s.nextRequest()
		}
		if err != nil {
			return 0, err
		}
	}
	if len(s.in) > 0 {
		n := copy(p, s.in)
		s.in = s.in[n:]
		return n, nil
	}
	if int64(len(p)) > s.payload {
		p = p[:s.payload]
	}
	n, err := s.br.Read(p)
	s.payload -= int64(n)
	return n, err
}

// readForward reads n bytes from the client and queues them for go-nbd.
func (s *session) readForward(n int) error {
	s.inBuf = append(s.inBuf[:0], make([]byte, n)...)
	if _, err := io.ReadFull(s.br, s.inBuf); err != nil {
		return err
	}
	s.in = s.inBuf
	return nil
}

func (s *session) nextOption() error {
	if err := s.readForward(optHeaderSize); err != nil {
		return err
	}
	h := s.in
	s.in = nil
	if be.Uint64(h[0:8]) != optMagic {
		return errBadMagic
	}
	id, length := be.Uint32(h[8:12]), be.Uint32(h[12:16])
	if length > maxOptionLen {
		return fmt.Errorf("%w: option %d has %d bytes", errOptionSize, id, length)
	}
	s.inBuf = append(s.inBuf, make([]byte, length)...)
	if _, err := io.ReadFull(s.br, s.inBuf[optHeaderSize:]); err != nil {
		return err
	}
	data := s.inBuf[optHeaderSize:]
	switch id {
	case optList:
		return s.list(data)
	case optInfo, optGo:
		return s.infoOrGo(id, data)
	case optExportName:
		return errExportName
	case optStructuredReply:
		return s.structuredReply(data)
	case optListMetaContext, optSetMetaContext:
		return s.metaContext(id, data)
	}
	s.in = s.inBuf // go-nbd acknowledges ABORT and refuses the rest
	return nil
}

// optReply writes one option reply straight to the client.
func (s *session) optReply(id, typ uint32, payload []byte) error {
	var h [optReplyHdrSize]byte
	be.PutUint64(h[0:8], replyMagic)
	be.PutUint32(h[8:12], id)
	be.PutUint32(h[12:16], typ)
	be.PutUint32(h[16:20], uint32(len(payload)))
	_, err := (&net.Buffers{h[:], payload}).WriteTo(s.Conn)
	return err
}

func (s *session) list(data []byte) error {
	if len(data) != 0 {
		return s.optReply(optList, repErrInvalid, []byte("nbdserver: NBD_OPT_LIST takes no data"))
	}
	infos, err := s.srv.cat.List()
	if err != nil {
		s.log.Error("listing exports", "err", err)
		return s.optReply(optList, repErrPolicy, []byte(err.Error()))
	}
	for _, e := range infos {
		p := be.AppendUint32(nil, uint32(len(e.Name)))
		p = append(append(p, e.Name...), e.Description...)
		if err := s.optReply(optList, repServer, p); err != nil {
			return err
		}
	}
	return s.optReply(optList, repAck, nil)
}

func (s *session) infoOrGo(id uint32, data []byte) error {
	if len(data) < 6 || uint64(len(data)) < 6+uint64(be.Uint32(data)) {
		return s.optReply(id, repErrInvalid, []byte("nbdserver: malformed option"))
	}
	nl := int(be.Uint32(data))
	name := string(data[4 : 4+nl])
	if nreq := int(be.Uint16(data[4+nl:])); len(data) != 6+nl+2*nreq {
		return s.optReply(id, repErrInvalid, []byte("nbdserver: malformed option"))
	}
	o, err := s.resolve(name, id == optGo)
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			s.log.Info("unknown export requested", "export", name, "err", err)
		} else {
			s.log.Error("opening export", "export", name, "err", err)
		}
		return s.optReply(id, repErrUnknown, []byte(err.Error()))
	}
	e := &server.Export{Name: name, Backend: o.be}
	if d, ok := o.exp.(Describer); ok {
		e.Description = d.Description()
	}
	s.slot[0] = e
	s.in = s.inBuf
	if id == optGo {
		s.inPhase = phaseTransmission
		s.serving = o
		s.log.Info("serving export", "export", name, "size", o.be.size, "cow", o.be.ov != nil)
	}
	return nil
}

// resolve opens name through the catalog, reusing the export of a previous
// INFO for the same name. For GO in COW mode it adds the overlay.
func (s *session) resolve(name string, goOpt bool) (*opened, error) {
	if s.cand == nil || s.cand.name != name {
		exp, err := s.srv.cat.Open(name)
		if err != nil {
			return nil, err
		}
		size := exp.Size()
		if size < 0 {
			exp.Close()
			return nil, fmt.Errorf("nbdserver: export %q has negative size %d", name, size)
		}
		if s.cand != nil {
			if err := s.cand.close(); err != nil {
				s.log.Warn("closing export", "export", s.cand.name, "err", err)
			}
		}
		s.cand = &opened{name: name, exp: exp}
		s.cand.be = &backend{s: s, name: name, exp: exp, size: size}
	}
	if goOpt && s.srv.opts.COW && s.cand.be.ov == nil {
		ov, err := newOverlay(s.srv.opts.TempDir, s.cand.exp, s.cand.be.size)
		if err != nil {
			return nil, err
		}
		s.cand.be.ov = ov
	}
	return s.cand, nil
}

func (s *session) nextRequest() error {
	if err := s.readForward(requestHeaderSize); err != nil {
		return err
	}
	h := s.in
	if be.Uint32(h[0:4]) != requestMagic {
		return errBadMagic
	}
	s.cur = request{flags: be.Uint16(h[4:6]), typ: be.Uint16(h[6:8]), handle: be.Uint64(h[8:16]),
		offset: be.Uint64(h[16:24]), length: be.Uint32(h[24:28])}
	s.reqErr = 0
	switch s.cur.typ {
	case cmdRead, cmdDisc:
	case cmdWrite:
		s.payload = int64(s.cur.length)
	case cmdFlush:
		// Nothing is ever dirty: the export is read-only and the COW
		// overlay is discarded at disconnect. go-nbd would say EINVAL.
		s.in = nil
		return s.simpleReply(s.cur.handle, 0)
	case cmdBlockStatus:
		s.in = nil
		return s.blockStatus()
	default:
		// go-nbd would skip "length" bytes of a command that has no
		// payload (TRIM, WRITE_ZEROES, ...) and lose the framing.
		s.in = nil
		s.log.Warn("unsupported command", "type", s.cur.typ)
		return s.simpleReply(s.cur.handle, errnoEINVAL)
	}
	return nil
}

func (s *session) simpleReply(handle uint64, errno uint32) error {
	var h [replyHeaderSize]byte
	be.PutUint32(h[0:4], simpleReplyMagic)
	be.PutUint32(h[4:8], errno)
	be.PutUint64(h[8:16], handle)
	_, err := s.Conn.Write(h[:])
	return err
}

// Write filters what go-nbd sends to the client.
func (s *session) Write(p []byte) (int, error) {
	n := len(p)
	var err error
	if s.negotiating {
		err = s.writeNegotiation(p)
	} else {
		err = s.writeTransmission(p)
	}
	if err != nil {
		return 0, err
	}
	return n, nil
}

func (s *session) writeNegotiation(p []byte) error {
	if s.greeted < handshakeSize {
		k := min(len(p), handshakeSize-s.greeted)
		if _, err := s.Conn.Write(p[:k]); err != nil {
			return err
		}
		s.greeted += k
		p = p[k:]
	}
	s.obuf = append(s.obuf, p...)
	for len(s.obuf) >= optReplyHdrSize {
		end := optReplyHdrSize + int(be.Uint32(s.obuf[16:20]))
		if len(s.obuf) < end {
			break
		}
		frame := s.obuf[:end]
		id, typ := be.Uint32(frame[8:12]), be.Uint32(frame[12:16])
		if typ == repInfo && end-optReplyHdrSize >= 12 && be.Uint16(frame[20:22]) == infoExport {
			be.PutUint16(frame[30:32], s.flags())
		}
		if _, err := s.Conn.Write(frame); err != nil {
			return err
		}
		s.obuf = s.obuf[end:]
		if typ == repAck && id == optGo {
			s.negotiating = false
			rest := s.obuf
			s.obuf = nil
			return s.writeTransmission(rest)
		}
	}
	if len(s.obuf) == 0 {
		s.obuf = nil
	}
	return nil
}

func (s *session) writeTransmission(p []byte) error {
	for len(p) > 0 {
		if s.dataLeft > 0 {
			k := int(min(int64(len(p)), s.dataLeft))
			switch {
			case s.held && s.structured:
				// A structured reply: an error, a hole or the data.
				s.held = false
				s.swallow = s.reqErr != 0
				if err := s.readReply(p[:k], s.reqErr); err != nil {
					return err
				}
			case s.held && s.reqErr != 0:
				s.held = false
				s.swallow = true
				be.PutUint32(s.rhdr[4:8], s.reqErr)
				if _, err := s.Conn.Write(s.rhdr[:]); err != nil {
					return err
				}
			case s.held:
				s.held = false
				if _, err := (&net.Buffers{s.rhdr[:], p[:k]}).WriteTo(s.Conn); err != nil {
					return err
				}
			case !s.swallow:
				if _, err := s.Conn.Write(p[:k]); err != nil {
					return err
				}
			}
			s.dataLeft -= int64(k)
			p = p[k:]
			continue
		}
		k := copy(s.rhdr[s.rn:], p)
		s.rn += k
		p = p[k:]
		if s.rn < replyHeaderSize {
			break
		}
		s.rn = 0
		errno := be.Uint32(s.rhdr[4:8])
		if s.cur.typ == cmdRead && errno == 0 && s.cur.length > 0 {
			s.held, s.swallow, s.dataLeft = true, false, int64(s.cur.length)
			continue
		}
		if errno == 0 && s.reqErr != 0 {
			errno = s.reqErr
			be.PutUint32(s.rhdr[4:8], errno)
		}
		if s.structured && s.cur.typ == cmdRead {
			// An empty read, or one go-nbd failed itself: no simple
			// reply to a read once structured replies are on.
			if err := s.readReply(nil, errno); err != nil {
				return err
			}
			continue
		}
		if _, err := s.Conn.Write(s.rhdr[:]); err != nil {
			return err
		}
	}
	return nil
}
