//go:build librbd

package librbd

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/backy/backy/pkg/rbd"
)

// TestConnectHonoursContext: with no monitor listening, librados waits for
// one until client_mount_timeout; an interrupt (a cancelled context) must
// end New at once rather than after that timeout.
func TestConnectHonoursContext(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "ceph.conf")
	err := os.WriteFile(conf, []byte(`[global]
mon host = 127.0.0.1:1
auth cluster required = none
auth service required = none
auth client required = none
client mount timeout = 60
`), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	e, err := New(ctx, rbd.Conn{Conf: conf})
	if e != nil {
		e.Close()
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("New without a monitor: %v, want the context's deadline", err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("New took %v to give up", took)
	}
}
