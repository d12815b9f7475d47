package quiesce_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"testing"
	"time"

	"github.com/backy/backy/internal/freezetest"
	"github.com/backy/backy/internal/logtest"
	"github.com/backy/backy/pkg/quiesce"
)

// qgaCall sends one command to the agent on a connection of its own and
// returns the reply, as another (earlier, failed) client would.
func qgaCall(t *testing.T, socket, cmd string) string {
	t.Helper()
	c, err := net.Dial("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	json.NewEncoder(c).Encode(map[string]string{"execute": cmd})
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("%s: %v", cmd, err)
	}
	return line
}

// TestGuestAgent freezes the loop-mounted guest through the real qemu-ga,
// confined to a mount namespace in which the guest is the only file system
// it could freeze (proved by GuestAgent before anything is sent). A freeze
// left over by an earlier client is cleared by the thaw that comes first.
func TestGuestAgent(t *testing.T) {
	g := freezetest.New(t)
	a := g.GuestAgent(t)
	t.Logf("leftover freeze: %s", qgaCall(t, a.Socket, "guest-fsfreeze-freeze"))
	if !g.Frozen(300 * time.Millisecond) {
		t.Fatal("the leftover freeze did not freeze the guest")
	}
	snap := newSnap(t)
	snap.delay = 200 * time.Millisecond
	var status string
	frozenAtSnapshot := false
	snap.onCreate = func() {
		frozenAtSnapshot = g.Frozen(100 * time.Millisecond)
		status = qgaCall(t, a.Socket, "guest-fsfreeze-status")
	}
	start := time.Now()
	res, err := quiesce.Snapshot(context.Background(), quiesce.Options{GuestAgent: a.Socket, Timeout: 20 * time.Second, Log: logtest.T(t, "quiesce")}, snap)
	if err != nil {
		t.Fatal(err)
	}
	if res.Consistency != quiesce.Frozen || !frozenAtSnapshot {
		t.Errorf("result %+v, frozen at the snapshot %v; want frozen", res, frozenAtSnapshot)
	}
	if want := `{"return": "frozen"}`; status[:len(status)-1] != want {
		t.Errorf("status during the snapshot %q, want %s", status, want)
	}
	g.ThawedWithin(t, time.Second)
	if s := qgaCall(t, a.Socket, "guest-fsfreeze-status"); s != "{\"return\": \"thawed\"}\n" {
		t.Errorf("status after %q", s)
	}
	t.Logf("frozen for %s, longest write stall %s", res.Frozen, g.LongestStall(start))
}
