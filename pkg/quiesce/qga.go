package quiesce

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"time"

	"github.com/backy/backy/pkg/exitcode"
)

// ErrGuestAgent is a QEMU guest agent that cannot be reached or answers
// with an error.
var ErrGuestAgent = exitcode.New(exitcode.Failure, "quiesce: guest agent")

// guestAgent is the freezer of the QEMU guest agent at a Unix socket. Its
// protocol is QMP-like JSON: one command object in, one object out
// ({"return": ...} or {"error": {"class": ..., "desc": ...}}).
type guestAgent struct {
	socket string
}

// errNothingFrozen marks a failed freeze that froze nothing for sure: the
// agent was never reached (no socket, no answer to guest-sync, garbage), so
// no freeze command was sent. The helper then does not thaw (a thaw needs
// the same agent, and would fail as THAW FAILED about a guest that is not
// frozen) and the fallback applies.
var errNothingFrozen = errors.New("nothing was frozen")

// Freeze synchronises with the agent, thaws whatever an earlier failure
// may have left frozen, freezes, and checks that the agent froze at least
// one file system and that the status is "frozen". qemu-ga marks itself
// frozen before it freezes anything and skips file systems that cannot be
// frozen: a freeze of none answers 0 and then "frozen".
func (g guestAgent) Freeze(ctx context.Context) error {
	reached := false
	err := g.session(ctx, func(c *qgaConn) error {
		reached = true
		if err := c.call("guest-fsfreeze-thaw"); err != nil {
			return err
		}
		var n int
		if err := c.callResult("guest-fsfreeze-freeze", &n); err != nil {
			return err
		}
		if n < 1 {
			return fmt.Errorf("guest-fsfreeze-freeze froze %d file systems", n)
		}
		return c.status("frozen")
	})
	if err != nil && !reached {
		return fmt.Errorf("%w (%w)", err, errNothingFrozen)
	}
	return err
}

// Thaw thaws and checks that the status is "thawed".
func (g guestAgent) Thaw(ctx context.Context) error {
	return g.session(ctx, func(c *qgaConn) error {
		if err := c.call("guest-fsfreeze-thaw"); err != nil {
			return err
		}
		return c.status("thawed")
	})
}

// Status returns the agent's guest-fsfreeze-status: "frozen" or "thawed".
func (g guestAgent) Status(ctx context.Context) (string, error) {
	var s string
	err := g.session(ctx, func(c *qgaConn) error {
		return c.callResult("guest-fsfreeze-status", &s)
	})
	return s, err
}

// session connects, synchronises and runs f, all bounded by ctx.
func (g guestAgent) session(ctx context.Context, f func(*qgaConn) error) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", g.socket)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrGuestAgent, err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	c := &qgaConn{conn: conn, dec: json.NewDecoder(conn), enc: json.NewEncoder(conn)}
	err = c.sync()
	if err == nil {
		err = f(c)
	}
	if err != nil && ctx.Err() != nil {
		return fmt.Errorf("%w: %s: %w", ErrTimeout, g.socket, ctx.Err())
	}
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrGuestAgent, g.socket, err)
	}
	return nil
}

type qgaConn struct {
	conn net.Conn
	dec  *json.Decoder
	enc  *json.Encoder
}

type qgaReply struct {
	Return json.RawMessage `json:"return"`
	Error  *struct {
		Class string `json:"class"`
		Desc  string `json:"desc"`
	} `json:"error"`
}

// sync sends guest-sync with a random id and reads replies until the one
// echoing it: whatever an earlier client left unread is skipped.
func (c *qgaConn) sync() error {
	// 0xFF resets the agent's parser from a half-sent command.
	if _, err := c.conn.Write([]byte{0xff}); err != nil {
		return err
	}
	id := rand.Int64N(1 << 40)
	if err := c.enc.Encode(map[string]any{"execute": "guest-sync", "arguments": map[string]any{"id": id}}); err != nil {
		return err
	}
	for range 16 {
		var r qgaReply
		if err := c.dec.Decode(&r); err != nil {
			return fmt.Errorf("guest-sync: %w", err)
		}
		var got int64
		if r.Error == nil && json.Unmarshal(r.Return, &got) == nil && got == id {
			return nil
		}
	}
	return fmt.Errorf("guest-sync: no reply with id %d", id)
}

func (c *qgaConn) call(cmd string) error {
	var ignore json.RawMessage
	return c.callResult(cmd, &ignore)
}

func (c *qgaConn) callResult(cmd string, result any) error {
	if err := c.enc.Encode(map[string]string{"execute": cmd}); err != nil {
		return fmt.Errorf("%s: %w", cmd, err)
	}
	var r qgaReply
	if err := c.dec.Decode(&r); err != nil {
		return fmt.Errorf("%s: %w", cmd, err)
	}
	if r.Error != nil {
		return fmt.Errorf("%s: %s: %s", cmd, r.Error.Class, r.Error.Desc)
	}
	if err := json.Unmarshal(r.Return, result); err != nil {
		return fmt.Errorf("%s: unexpected reply %s", cmd, r.Return)
	}
	return nil
}

func (c *qgaConn) status(want string) error {
	var s string
	if err := c.callResult("guest-fsfreeze-status", &s); err != nil {
		return err
	}
	if s != want {
		return fmt.Errorf("guest-fsfreeze-status is %q, not %q", s, want)
	}
	return nil
}
