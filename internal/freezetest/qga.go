package freezetest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// childEnv makes a test binary the namespace builder of GuestAgent (see
// MaybeChild); it holds the child's spec as JSON.
const childEnv = "BACKY_FREEZETEST_QGA"

// QGABinary is the QEMU guest agent from Debian's qemu-guest-agent.
const QGABinary = "/usr/sbin/qemu-ga"

type childSpec struct {
	ParentNS string   // the parent's mount namespace, which the child must not be in
	Root     string   // empty directory to become the namespace's root
	Mount    string   // the guest's mount point, bound to /mnt inside
	Files    []string // qemu-ga and the libraries it loads, copied in
}

// MaybeChild is called first thing in TestMain of a package that uses
// GuestAgent: in the re-executed test binary it builds the namespace and
// becomes qemu-ga; otherwise it returns at once.
func MaybeChild() {
	js := os.Getenv(childEnv)
	if js == "" {
		return
	}
	var s childSpec
	err := json.Unmarshal([]byte(js), &s)
	if err == nil {
		err = becomeAgent(&s)
	}
	fmt.Fprintf(os.Stderr, "freezetest: guest agent namespace: %v\n", err)
	os.Exit(1)
}

// becomeAgent runs in a new mount namespace (the parent started it with
// CLONE_NEWNS). It makes every mount private, so nothing done here reaches
// the machine's namespace, mounts a tmpfs as the new root, copies qemu-ga
// and its libraries into it, binds the guest's mount to /mnt, mounts /proc,
// pivots into the tmpfs and detaches the old root: every file system of the
// machine is then out of reach. What is left is the tmpfs (device major 0),
// proc (major 0) and the loop mount - the only one qemu-ga can freeze.
func becomeAgent(s *childSpec) error {
	if ns, err := os.Readlink("/proc/self/ns/mnt"); err != nil || ns == s.ParentNS {
		return fmt.Errorf("not in a mount namespace of its own (%s, %v): refusing to mount anything", ns, err)
	}
	if err := syscall.Mount("", "/", "", syscall.MS_REC|syscall.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("making mounts private: %w", err)
	}
	if err := syscall.Mount("qga-root", s.Root, "tmpfs", 0, "size=128m,mode=0755"); err != nil {
		return fmt.Errorf("tmpfs: %w", err)
	}
	for _, f := range s.Files {
		if err := copyFile(f, filepath.Join(s.Root, f)); err != nil {
			return err
		}
	}
	for _, d := range []string{"mnt", "proc", "run", "old", "tmp"} {
		if err := os.MkdirAll(filepath.Join(s.Root, d), 0o755); err != nil {
			return err
		}
	}
	if err := syscall.Mount(s.Mount, filepath.Join(s.Root, "mnt"), "", syscall.MS_BIND, ""); err != nil {
		return fmt.Errorf("binding the guest: %w", err)
	}
	if err := syscall.Mount("proc", filepath.Join(s.Root, "proc"), "proc", syscall.MS_NOSUID|syscall.MS_NODEV|syscall.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("proc: %w", err)
	}
	if err := os.Chdir(s.Root); err != nil {
		return err
	}
	if err := syscall.PivotRoot(".", "old"); err != nil {
		return fmt.Errorf("pivot_root: %w", err)
	}
	if err := os.Chdir("/"); err != nil {
		return err
	}
	if err := syscall.Unmount("/old", syscall.MNT_DETACH); err != nil {
		return fmt.Errorf("detaching the old root: %w", err)
	}
	os.Remove("/old")
	return syscall.Exec(QGABinary, []string{"qemu-ga", "-m", "unix-listen", "-p", "/run/qga.sock",
		"-t", "/run", "-f", "/run/qemu-ga.pid", "-v"}, []string{"PATH=/usr/sbin:/usr/bin"})
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		return err
	}
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// libraries lists qemu-ga's shared libraries and its ELF interpreter, as
// ldd names them.
func libraries(t testing.TB) []string {
	t.Helper()
	out := run(t, "ldd", QGABinary)
	var files []string
	for _, line := range strings.Split(out, "\n") {
		for _, f := range strings.Fields(line) {
			if strings.HasPrefix(f, "/") {
				files = append(files, f)
			}
		}
	}
	return files
}

// Agent is a qemu-ga confined to the guest.
type Agent struct {
	PID    int
	Socket string // reachable from the machine's namespace: /proc/PID/root/run/qga.sock
}

// GuestAgent starts the real qemu-ga in a mount namespace of its own in
// which the guest's loop mount (at /mnt) is the only file system backed by
// a device, and proves that from /proc/PID/mountinfo before returning: a
// test sends no freeze before this returns. The test binary must call
// MaybeChild in TestMain.
func (g *Guest) GuestAgent(t testing.TB) *Agent {
	t.Helper()
	need(t, QGABinary, "ldd")
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ns, err := os.Readlink("/proc/self/ns/mnt")
	if err != nil {
		t.Fatal(err)
	}
	spec, _ := json.Marshal(childSpec{ParentNS: ns, Root: t.TempDir(), Mount: g.Mount,
		Files: append([]string{QGABinary}, libraries(t)...)})
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), childEnv+"="+string(spec))
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("qemu-ga output:\n%s", stderr.String())
		}
	})
	a := &Agent{PID: cmd.Process.Pid, Socket: fmt.Sprintf("/proc/%d/root/run/qga.sock", cmd.Process.Pid)}
	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case <-exited:
			t.Fatalf("freezetest: qemu-ga ended: %s", stderr.String())
		default:
		}
		if fi, err := os.Stat(a.Socket); err == nil && fi.Mode()&os.ModeSocket != 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("freezetest: no qemu-ga socket after 20 s: %s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	a.prove(t, g)
	return a
}

// prove checks what qemu-ga sees: its executable is qemu-ga, and of the
// mounts in its namespace exactly one is backed by a device (major number
// other than 0, the kind qemu-ga freezes): the guest's loop device, at
// /mnt. Every other mount must be the tmpfs root or proc.
func (a *Agent) prove(t testing.TB, g *Guest) {
	t.Helper()
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", a.PID))
	if err != nil || filepath.Base(exe) != "qemu-ga" {
		t.Fatalf("freezetest: process %d is %q, not qemu-ga (%v)", a.PID, exe, err)
	}
	entries := Mountinfo(t, fmt.Sprintf("/proc/%d/mountinfo", a.PID))
	devices := 0
	for _, e := range entries {
		t.Logf("qemu-ga sees: %s on %s type %s (%d:%d)", e.Source, e.Point, e.Type, major(e.Dev), minor(e.Dev))
		switch {
		case e.Major() != 0:
			if e.Dev != g.Rdev || e.Point != "/mnt" {
				t.Fatalf("freezetest: qemu-ga could freeze %s on %s (%d:%d): not the guest", e.Source, e.Point, major(e.Dev), minor(e.Dev))
			}
			devices++
		case e.Point == "/" && e.Type == "tmpfs", e.Point == "/proc" && e.Type == "proc":
		default:
			t.Fatalf("freezetest: unexpected mount %s on %s type %s in qemu-ga's namespace", e.Source, e.Point, e.Type)
		}
	}
	if devices != 1 {
		t.Fatalf("freezetest: %d device-backed mounts in qemu-ga's namespace, want exactly the guest", devices)
	}
}
