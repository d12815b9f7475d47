package nbdserver

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"testing"
	"time"
)

// rawClient is a minimal NBD client for protocol-level tests: fixed
// newstyle negotiation, simple replies, one request at a time.
type rawClient struct {
	c      net.Conn
	r      *bufio.Reader
	flags  uint16
	size   uint64
	name   string // of NBD_INFO_NAME
	handle uint64
}

type optReply struct {
	typ  uint32
	data []byte
}

func dialRaw(t testing.TB, addr string) *rawClient {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(30 * time.Second))
	rc := &rawClient{c: c, r: bufio.NewReader(c)}
	var greet [18]byte
	if _, err := io.ReadFull(rc.r, greet[:]); err != nil {
		t.Fatal(err)
	}
	if binary.BigEndian.Uint64(greet[8:16]) != optMagic {
		t.Fatalf("bad greeting % x", greet)
	}
	if _, err := c.Write([]byte{0, 0, 0, 1}); err != nil { // fixed newstyle
		t.Fatal(err)
	}
	return rc
}

func (rc *rawClient) sendOpt(id uint32, data []byte) error {
	h := binary.BigEndian.AppendUint64(nil, optMagic)
	h = binary.BigEndian.AppendUint32(h, id)
	h = binary.BigEndian.AppendUint32(h, uint32(len(data)))
	_, err := rc.c.Write(append(h, data...))
	return err
}

// opt sends an option and collects replies up to the final one.
func (rc *rawClient) opt(id uint32, data []byte) ([]optReply, error) {
	if err := rc.sendOpt(id, data); err != nil {
		return nil, err
	}
	var out []optReply
	for {
		var h [20]byte
		if _, err := io.ReadFull(rc.r, h[:]); err != nil {
			return out, err
		}
		if got := binary.BigEndian.Uint32(h[8:12]); got != id {
			return out, fmt.Errorf("reply for option %d, want %d", got, id)
		}
		r := optReply{typ: binary.BigEndian.Uint32(h[12:16]), data: make([]byte, binary.BigEndian.Uint32(h[16:20]))}
		if _, err := io.ReadFull(rc.r, r.data); err != nil {
			return out, err
		}
		out = append(out, r)
		if r.typ == repAck || r.typ&(1<<31) != 0 {
			return out, nil
		}
		if id == optInfo || id == optGo {
			if r.typ == repInfo && len(r.data) >= 12 && binary.BigEndian.Uint16(r.data) == infoExport {
				rc.size = binary.BigEndian.Uint64(r.data[2:10])
				rc.flags = binary.BigEndian.Uint16(r.data[10:12])
			}
			if r.typ == repInfo && len(r.data) >= 2 && binary.BigEndian.Uint16(r.data) == infoName {
				rc.name = string(r.data[2:])
			}
		}
	}
}

func goData(name string) []byte {
	d := binary.BigEndian.AppendUint32(nil, uint32(len(name)))
	d = append(d, name...)
	return binary.BigEndian.AppendUint16(d, 0)
}

// goExport sends NBD_OPT_GO and returns the final reply type and its data.
func (rc *rawClient) goExport(name string) (uint32, string, error) {
	rs, err := rc.opt(optGo, goData(name))
	if err != nil {
		return 0, "", err
	}
	last := rs[len(rs)-1]
	return last.typ, string(last.data), nil
}

func (rc *rawClient) send(typ uint16, off uint64, length uint32, payload []byte) (uint64, error) {
	rc.handle++
	h := binary.BigEndian.AppendUint32(nil, requestMagic)
	h = binary.BigEndian.AppendUint16(h, 0)
	h = binary.BigEndian.AppendUint16(h, typ)
	h = binary.BigEndian.AppendUint64(h, rc.handle)
	h = binary.BigEndian.AppendUint64(h, off)
	h = binary.BigEndian.AppendUint32(h, length)
	_, err := rc.c.Write(append(h, payload...))
	return rc.handle, err
}

func (rc *rawClient) reply(handle uint64) (uint32, error) {
	var h [16]byte
	if _, err := io.ReadFull(rc.r, h[:]); err != nil {
		return 0, err
	}
	if binary.BigEndian.Uint32(h[0:4]) != simpleReplyMagic {
		return 0, fmt.Errorf("bad reply magic % x", h)
	}
	if got := binary.BigEndian.Uint64(h[8:16]); got != handle {
		return 0, fmt.Errorf("reply for handle %d, want %d", got, handle)
	}
	return binary.BigEndian.Uint32(h[4:8]), nil
}

// read returns the data, or the NBD errno of a failed read.
func (rc *rawClient) read(off uint64, n uint32) ([]byte, uint32, error) {
	h, err := rc.send(cmdRead, off, n, nil)
	if err != nil {
		return nil, 0, err
	}
	errno, err := rc.reply(h)
	if err != nil || errno != 0 {
		return nil, errno, err
	}
	buf := make([]byte, n)
	_, err = io.ReadFull(rc.r, buf)
	return buf, 0, err
}

// cmd sends a request without payload and returns the errno of its reply.
func (rc *rawClient) cmd(typ uint16, off uint64, n uint32, payload []byte) (uint32, error) {
	h, err := rc.send(typ, off, n, payload)
	if err != nil {
		return 0, err
	}
	return rc.reply(h)
}
