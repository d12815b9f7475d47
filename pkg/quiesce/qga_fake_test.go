package quiesce_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/backy/backy/internal/logtest"
	"github.com/backy/backy/pkg/quiesce"
)

// fakeAgent is a QEMU guest agent at a Unix socket that answers as told:
// a stand-in for the agents the real qemu-ga cannot be made to be here (one
// that froze nothing, one that never answers). It records the commands.
type fakeAgent struct {
	socket string
	mu     sync.Mutex
	cmds   []string
}

// newFakeAgent serves answer(cmd) for each command; silent agents never
// answer.
func newFakeAgent(t *testing.T, silent bool, answer func(cmd string) string) *fakeAgent {
	a := &fakeAgent{socket: filepath.Join(t.TempDir(), "qga.sock")}
	l, err := net.Listen("unix", a.socket)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				sc := bufio.NewScanner(c)
				for sc.Scan() {
					line := strings.TrimLeft(sc.Text(), "\xff")
					var req struct {
						Execute   string          `json:"execute"`
						Arguments json.RawMessage `json:"arguments"`
					}
					if json.Unmarshal([]byte(line), &req) != nil {
						continue
					}
					a.mu.Lock()
					a.cmds = append(a.cmds, req.Execute)
					a.mu.Unlock()
					if silent {
						continue
					}
					reply := answer(req.Execute)
					if req.Execute == "guest-sync" {
						var args struct{ ID int64 }
						json.Unmarshal(req.Arguments, &args)
						b, _ := json.Marshal(map[string]int64{"return": args.ID})
						reply = string(b)
					}
					c.Write([]byte(reply + "\n"))
				}
			}()
		}
	}()
	return a
}

func (a *fakeAgent) sent(cmd string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, c := range a.cmds {
		if c == cmd {
			return true
		}
	}
	return false
}

// TestGuestAgentUnreached: an agent that cannot be reached (no socket, or
// one that never answers: a guest without qemu-ga, a channel libvirt
// holds) froze nothing. The run takes a crash-consistent snapshot with the
// reason, as the fallback says, within the timeout: no thaw attempts, no
// THAW FAILED (which made every run of such a VM fail, after four times
// the timeout).
func TestGuestAgentUnreached(t *testing.T) {
	silent := newFakeAgent(t, true, nil)
	for name, socket := range map[string]string{
		"missing": filepath.Join(t.TempDir(), "none.sock"),
		"silent":  silent.socket,
	} {
		t.Run(name, func(t *testing.T) {
			snap := newSnap(t)
			start := time.Now()
			res, err := quiesce.Snapshot(context.Background(), quiesce.Options{GuestAgent: socket, Timeout: time.Second,
				Log: logtest.T(t, "quiesce")}, snap)
			took := time.Since(start)
			if err != nil || res.Consistency != quiesce.Crash || !strings.Contains(res.Reason, "nothing was frozen") {
				t.Fatalf("err %v, result %+v; want a crash snapshot, nothing frozen", err, res)
			}
			if ok, _ := snap.Exists(context.Background()); !ok {
				t.Error("no snapshot")
			}
			if took > 3*time.Second {
				t.Errorf("took %s with a timeout of 1s: thaw attempts?", took)
			}
			if silent.sent("guest-fsfreeze-freeze") {
				t.Error("a freeze was sent to an agent that never answered guest-sync")
			}
		})
	}
}

// TestGuestAgentFrozeNothing: qemu-ga answers guest-fsfreeze-freeze with
// the number of file systems it froze, and says "frozen" even when that is
// 0 (none it could freeze). That is no frozen snapshot: thaw (the agent
// counts itself frozen), then the fallback.
func TestGuestAgentFrozeNothing(t *testing.T) {
	state := "thawed"
	a := newFakeAgent(t, false, func(cmd string) string {
		switch cmd {
		case "guest-fsfreeze-freeze":
			state = "frozen" // as qemu-ga: before it looks for file systems
			return `{"return": 0}`
		case "guest-fsfreeze-thaw":
			state = "thawed"
			return `{"return": 0}`
		case "guest-fsfreeze-status":
			return `{"return": "` + state + `"}`
		}
		return `{"return": {}}`
	})
	for _, fallback := range []string{quiesce.FallbackCrash, quiesce.FallbackFail} {
		t.Run(fallback, func(t *testing.T) {
			snap := newSnap(t)
			res, err := quiesce.Snapshot(context.Background(), quiesce.Options{GuestAgent: a.socket, Timeout: 5 * time.Second,
				Fallback: fallback, Log: logtest.T(t, "quiesce")}, snap)
			if fallback == quiesce.FallbackFail {
				if !errors.Is(err, quiesce.ErrFreeze) || !strings.Contains(err.Error(), "froze 0 file systems") {
					t.Fatalf("err %v, want ErrFreeze: froze 0 file systems", err)
				}
				return
			}
			if err != nil || res.Consistency != quiesce.Crash || !strings.Contains(res.Reason, "froze 0 file systems") {
				t.Fatalf("err %v, result %+v; want a crash snapshot: froze 0 file systems", err, res)
			}
		})
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if n := strings.Count(strings.Join(a.cmds, " "), "guest-fsfreeze-thaw"); n < 4 {
		t.Errorf("commands %v: want a thaw before and after each freeze", a.cmds)
	}
}

// TestCommandsDoNotInheritHelper: the freeze and thaw commands run without
// the helper's spec in their environment, or a backy-extract they start
// would take itself for a helper.
func TestCommandsDoNotInheritHelper(t *testing.T) {
	snap := newSnap(t)
	res, err := quiesce.Snapshot(context.Background(), quiesce.Options{
		FreezeCommand: `test -z "$` + quiesce.HelperEnv + `" || { echo inherited >&2; exit 1; }`, ThawCommand: "true",
		Timeout: 5 * time.Second, Log: logtest.T(t, "quiesce")}, snap)
	if err != nil || res.Consistency != quiesce.Frozen {
		t.Fatalf("err %v, result %+v; want frozen", err, res)
	}
}
