package nbdmount

import (
	"io"
	"os"
	"runtime"
	"syscall"
	"testing"
	"time"
)

// TestHelperOutlivesStartingThread starts a helper from a goroutine that
// ends locked to its thread, so Go ends the thread. The parent-death
// signal follows the thread that forked, not the process: a helper
// started from such a thread got SIGTERM at once (fuse2fs then unmounts
// itself under a running copy; seen with read-ahead loads on threads of
// their own). It must live until it is ended.
func TestHelperOutlivesStartingThread(t *testing.T) {
	died := make(chan *helper, 1)
	var h *helper
	for h == nil {
		started := make(chan *helper)
		go func() {
			runtime.LockOSThread()
			if syscall.Gettid() == os.Getpid() {
				// Go never ends the main thread: try another
				runtime.UnlockOSThread()
				started <- nil
				return
			}
			// never unlocked: the thread ends with the goroutine
			h, err := startHelper("sleep", t.TempDir(), io.Discard, died, "sleep", "30")
			if err != nil {
				t.Error(err)
				h = &helper{} // stop trying
			}
			started <- h
		}()
		h = <-started
	}
	if h.cmd == nil {
		return
	}
	defer h.kill()
	select {
	case <-died:
		t.Fatalf("helper ended when the thread that started it did: %v", h.exited())
	case <-time.After(500 * time.Millisecond):
	}
}
