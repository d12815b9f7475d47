// Package freezetest gives tests a guest to freeze that is never a file
// system of the machine: an ext4 image, loop-mounted in a temporary
// directory, with a writer running inside it, and the real QEMU guest agent
// confined to a mount namespace of its own in which that loop mount is the
// only file system backed by a device.
//
// Every freeze a test makes must target Guest.Mount. New proves before it
// returns that the mount point is the loop device and nothing else (its
// st_dev is the loop device's number, it is not "/", and no mount that
// existed before carries that device), the freeze command it hands out
// checks the mount's source again each time it runs, and the clean-up
// thaws before it unmounts and detaches the loop device, also when the test
// failed.
package freezetest

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// RequireEnv makes a missing tool or a non-root user fail the test instead
// of skipping it (as BACKY_REQUIRE_TOOLS does for every tool test).
const RequireEnv = "BACKY_REQUIRE_TOOLS"

// Guest is the stand-in guest: a loop-mounted ext4 image.
type Guest struct {
	Image string // the image file
	Dev   string // /dev/loopN
	Mount string // where it is mounted
	Rdev  uint64 // the loop device's number, st_dev of everything below Mount

	mu     sync.Mutex
	writes []Write
	stop   chan struct{}
	done   chan struct{}
	probes sync.WaitGroup // writes of Frozen and WaitThawed still under way
}

// Write is one write the writer made: when it started and how long it took
// (a write into a frozen file system waits for the thaw).
type Write struct {
	Start time.Time
	Took  time.Duration
}

func need(t testing.TB, tools ...string) {
	t.Helper()
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root")
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) == 0 {
		return
	}
	if os.Getenv(RequireEnv) != "" {
		t.Fatalf("freezetest: missing %s (%s is set)", strings.Join(missing, ", "), RequireEnv)
	}
	t.Skipf("freezetest: missing %s", strings.Join(missing, ", "))
}

func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// New makes a 32 MiB ext4 image, loop-mounts it, proves the mount is what it
// claims to be, and starts a writer in it. The clean-up thaws, stops the
// writer, unmounts and detaches, in that order.
func New(t testing.TB) *Guest {
	t.Helper()
	need(t, "losetup", "mkfs.ext4", "fsfreeze", "mount", "umount", "findmnt")
	dir := t.TempDir()
	g := &Guest{Image: filepath.Join(dir, "guest.img"), Mount: filepath.Join(dir, "guest")}
	before := mountedDevices(t, "/proc/self/mountinfo")
	if err := os.WriteFile(g.Image, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(g.Image, 32<<20); err != nil {
		t.Fatal(err)
	}
	run(t, "mkfs.ext4", "-q", "-F", g.Image)
	g.Dev = run(t, "losetup", "--find", "--show", g.Image)
	t.Cleanup(func() { exec.Command("losetup", "-d", g.Dev).Run() })
	if err := os.Mkdir(g.Mount, 0o755); err != nil {
		t.Fatal(err)
	}
	run(t, "mount", "-t", "ext4", g.Dev, g.Mount)
	t.Cleanup(func() {
		// A probe's file may be a moment from closed after the thaw.
		var out []byte
		var err error
		for range 20 {
			if out, err = exec.Command("umount", g.Mount).CombinedOutput(); err == nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Errorf("umount %s: %v: %s", g.Mount, err, out)
	})
	g.prove(t, before)
	g.stop, g.done = make(chan struct{}), make(chan struct{})
	go g.writer()
	t.Cleanup(func() {
		close(g.stop)
		<-g.done
		// The probes that waited for a thaw finish now that it came.
		probed := make(chan struct{})
		go func() { g.probes.Wait(); close(probed) }()
		select {
		case <-probed:
		case <-time.After(10 * time.Second):
			t.Errorf("freezetest: writes into %s still waiting 10 s after the thaw", g.Mount)
		}
	})
	// Registered last, so it runs first: thaw before anything else,
	// whatever the test left behind. fsfreeze -u of a thawed file system
	// fails with EINVAL, which is fine.
	t.Cleanup(func() { exec.Command("fsfreeze", "-u", g.Mount).Run() })
	return g
}

// prove checks, before any freeze, that g.Mount is the loop mount: its
// st_dev is the loop device's number, findmnt names the loop device as its
// source, it is not "/", and no mount that existed before New carried that
// device. Any doubt fails the test.
func (g *Guest) prove(t testing.TB, before map[uint64]string) {
	t.Helper()
	var dev, mnt, root syscall.Stat_t
	if err := syscall.Stat(g.Dev, &dev); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Stat(g.Mount, &mnt); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Stat("/", &root); err != nil {
		t.Fatal(err)
	}
	g.Rdev = uint64(dev.Rdev)
	src := run(t, "findmnt", "-n", "-o", "SOURCE", "--mountpoint", g.Mount)
	switch {
	case dev.Mode&syscall.S_IFMT != syscall.S_IFBLK || major(g.Rdev) != 7:
		t.Fatalf("freezetest: %s is not a loop block device", g.Dev)
	case uint64(mnt.Dev) != g.Rdev:
		t.Fatalf("freezetest: %s has st_dev %d:%d, not the loop device %s", g.Mount, major(uint64(mnt.Dev)), minor(uint64(mnt.Dev)), g.Dev)
	case src != g.Dev:
		t.Fatalf("freezetest: findmnt says %s is mounted from %q, not %s", g.Mount, src, g.Dev)
	case g.Mount == "/" || uint64(root.Dev) == g.Rdev:
		t.Fatalf("freezetest: %s is the root file system", g.Mount)
	case before[g.Rdev] != "":
		t.Fatalf("freezetest: device %s was already mounted at %s before the test", g.Dev, before[g.Rdev])
	}
}

// mountedDevices maps the device numbers of the mounts in a mountinfo file
// to their mount points.
func mountedDevices(t testing.TB, path string) map[uint64]string {
	t.Helper()
	m := map[uint64]string{}
	for _, e := range Mountinfo(t, path) {
		m[e.Dev] = e.Point
	}
	return m
}

// MountEntry is one line of a mountinfo file.
type MountEntry struct {
	Dev    uint64 // device number (major:minor)
	Point  string
	Type   string
	Source string
}

// Major is the entry's device major number; 0 for virtual file systems.
func (e MountEntry) Major() uint64 { return major(e.Dev) }

// Mountinfo parses a /proc/PID/mountinfo file.
func Mountinfo(t testing.TB, path string) []MountEntry {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var list []MountEntry
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		sep := -1
		for i, f := range fields {
			if f == "-" {
				sep = i
				break
			}
		}
		if len(fields) < 5 || sep < 0 || sep+2 >= len(fields) {
			t.Fatalf("freezetest: bad mountinfo line %q", sc.Text())
		}
		ma, mi, _ := strings.Cut(fields[2], ":")
		maj, err1 := strconv.ParseUint(ma, 10, 32)
		min, err2 := strconv.ParseUint(mi, 10, 32)
		if err1 != nil || err2 != nil {
			t.Fatalf("freezetest: bad device in mountinfo line %q", sc.Text())
		}
		list = append(list, MountEntry{Dev: mkdev(maj, min), Point: unescape(fields[4]),
			Type: fields[sep+1], Source: fields[sep+2]})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return list
}

func unescape(s string) string {
	r := strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`)
	return r.Replace(s)
}

func major(dev uint64) uint64 { return (dev>>8)&0xfff | (dev>>32)&^0xfff }
func minor(dev uint64) uint64 { return dev&0xff | (dev>>12)&^0xff }
func mkdev(maj, min uint64) uint64 {
	return (maj&0xfff)<<8 | (maj&^0xfff)<<32 | min&0xff | (min&^0xff)<<12
}

// FreezeCommand is a shell command freezing the guest; it checks that the
// mount point is still the loop device before it freezes. ThawCommand
// thaws it.
func (g *Guest) FreezeCommand() string {
	return fmt.Sprintf(`[ "$(findmnt -n -o SOURCE --mountpoint %[1]s)" = %[2]s ] && fsfreeze -f %[1]s`, g.Mount, g.Dev)
}

// ThawCommand thaws the guest. Like a hypervisor's thaw it succeeds when
// nothing is frozen (fsfreeze -u fails on a thawed file system); tests
// check the guest's state themselves (Frozen, ThawedWithin).
func (g *Guest) ThawCommand() string { return "fsfreeze -u " + g.Mount + " || true" }

// writer writes and syncs a small file in the guest over and over, and
// records how long each write took.
func (g *Guest) writer() {
	defer close(g.done)
	buf := make([]byte, 4096)
	for i := 0; ; i++ {
		select {
		case <-g.stop:
			return
		default:
		}
		start := time.Now()
		f, err := os.OpenFile(filepath.Join(g.Mount, fmt.Sprintf("w%d", i%8)), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
		if err == nil {
			f.Write(buf)
			f.Sync()
			f.Close()
		}
		g.mu.Lock()
		g.writes = append(g.writes, Write{Start: start, Took: time.Since(start)})
		g.mu.Unlock()
		time.Sleep(5 * time.Millisecond)
	}
}

// Writes returns the writer's writes so far.
func (g *Guest) Writes() []Write {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]Write(nil), g.writes...)
}

// LongestStall is the longest a write that started at or after since took:
// how long the guest was frozen, as the guest saw it. It first waits (up to
// 2 s) for a write that starts after the call, so that a write the freeze
// held up has been counted.
func (g *Guest) LongestStall(since time.Time) time.Duration {
	now := time.Now()
	for deadline := now.Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		ws := g.Writes()
		if len(ws) > 0 && ws[len(ws)-1].Start.After(now) {
			break
		}
	}
	var longest time.Duration
	for _, w := range g.Writes() {
		if !w.Start.Before(since) && w.Took > longest {
			longest = w.Took
		}
	}
	return longest
}

// Frozen reports whether the guest is frozen: a write and sync into it
// does not finish within wait. It leaves a goroutine behind while frozen,
// which ends at the thaw.
func (g *Guest) Frozen(wait time.Duration) bool {
	done := make(chan struct{})
	g.probes.Add(1)
	go func() {
		defer g.probes.Done()
		defer close(done)
		f, err := os.OpenFile(filepath.Join(g.Mount, "probe"), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
		if err == nil {
			f.Write([]byte("probe"))
			f.Sync()
			f.Close()
		}
	}()
	select {
	case <-done:
		return false
	case <-time.After(wait):
		return true
	}
}

// WaitThawed writes into the guest and returns how long the write took. A
// write into a frozen file system waits in the kernel for the thaw, so the
// time is that until the thaw (an upper bound: the write itself counts).
// ok is false when the write has not returned after max; it then finishes
// in the background at the thaw.
func (g *Guest) WaitThawed(max time.Duration) (took time.Duration, ok bool) {
	start := time.Now()
	done := make(chan struct{})
	g.probes.Add(1)
	go func() {
		defer g.probes.Done()
		defer close(done)
		f, err := os.OpenFile(filepath.Join(g.Mount, "thaw-probe"), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
		if err == nil {
			f.Write([]byte("probe"))
			f.Close()
		}
	}()
	select {
	case <-done:
		return time.Since(start), true
	case <-time.After(max):
		return max, false
	}
}

// ThawedWithin fails the test when the guest is still frozen after d; it
// then thaws it so that the test can go on.
func (g *Guest) ThawedWithin(t testing.TB, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		if !g.Frozen(200 * time.Millisecond) {
			return
		}
		if time.Now().After(deadline) {
			exec.Command("fsfreeze", "-u", g.Mount).Run()
			t.Errorf("freezetest: guest %s still frozen %s later", g.Mount, d)
			return
		}
	}
}
