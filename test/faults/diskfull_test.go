package faults

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// TestDiskFull fills the file system under a repository at different
// moments of a backup: before the first chunk, part-way through the chunks,
// around the index and metadata. Every backup that does not fit must fail
// cleanly with exit 7, leave the repository readable with every old revision
// intact and nothing half there, and succeed once space is freed.
//
// The repository lives on a 320 MiB tmpfs (room for every step without purge) mounted in a private mount
// namespace of a re-executed test binary (as root, or in a user namespace
// where the kernel allows it), so nothing is left mounted if the test dies.
func TestDiskFull(t *testing.T) {
	if os.Getenv(innerEnv) == "diskfull" {
		diskFullInner(t)
		return
	}
	t.Parallel()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run", "^TestDiskFull$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), innerEnv+"=diskfull", "BACKY_FAULTS_BIN="+binDir)
	attr := &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNS}
	if os.Getuid() != 0 {
		attr.Cloneflags |= syscall.CLONE_NEWUSER
		attr.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getuid(), Size: 1}}
		attr.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getgid(), Size: 1}}
	}
	cmd.SysProcAttr = attr
	out, err := cmd.CombinedOutput()
	if err != nil && cmd.ProcessState == nil {
		t.Skipf("no private mount namespace here (%v): a full file system cannot be made without root or user namespaces", err)
	}
	body := strings.TrimSpace(string(out))
	if err != nil {
		t.Fatalf("in the mount namespace:\n%s", body)
	}
	if strings.Contains(body, "--- SKIP") {
		t.Skipf("in the mount namespace:\n%s", body)
	}
	t.Logf("in the mount namespace:\n%s", body)
}

func diskFullInner(t *testing.T) {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		t.Skipf("cannot make mounts private: %v", err)
	}
	mnt := filepath.Join(t.TempDir(), "small")
	os.Mkdir(mnt, 0o755)
	if err := unix.Mount("tmpfs", mnt, "tmpfs", 0, "size=320m"); err != nil {
		t.Skipf("cannot mount a 320 MiB tmpfs: %v", err)
	}
	defer unix.Unmount(mnt, unix.MNT_DETACH)
	tmp := t.TempDir()
	dir := filepath.Join(mnt, "repo")
	sums := map[string]string{}
	im := newImage(t, filepath.Join(tmp, "vm.img"), 12<<20, 8)
	fill := func() { // new content in every chunk, incompressible
		f, err := os.OpenFile(im.path, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.WriteAt(im.random(im.size), 0); err != nil {
			t.Fatal(err)
		}
	}
	ver := 0
	store := func() result {
		ver++
		tag := fmt.Sprintf("v%d", ver)
		sums[tag] = fileSum(t, im.path)
		return backup(t, dir, im.path, tag, tag)
	}
	if r := store(); r.code != 0 {
		t.Fatalf("first backup: %v", r)
	}
	filler := filepath.Join(mnt, "filler")
	leave := func(free int64) {
		os.Remove(filler)
		var st unix.Statfs_t
		if err := unix.Statfs(mnt, &st); err != nil {
			t.Fatal(err)
		}
		avail := int64(st.Bavail) * st.Bsize
		if avail-free <= 0 {
			return
		}
		f, err := os.Create(filler)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := unix.Fallocate(int(f.Fd()), 0, 0, avail-free); err != nil {
			t.Fatal(err)
		}
	}
	const page = 4096
	need := func() int64 { // what the new chunks take, measured on a scratch repository
		scratch := filepath.Join(tmp, "scratch")
		defer os.RemoveAll(scratch)
		mustBackup(t, scratch, im.path, "")
		var n int64
		filepath.Walk(filepath.Join(scratch, "chunks"), func(p string, fi os.FileInfo, err error) error {
			if err == nil && fi.Mode().IsRegular() {
				n += (fi.Size() + page - 1) / page * page
			}
			return nil
		})
		return n
	}
	outcomes := map[int]int{}
	var log []string
	steps := []int64{0, 64 << 10, 2 << 20, -3 * page, -page, 0, page, 2 * page, 3 * page, 6 * page}
	for i, s := range steps {
		fill()
		free := s
		if i >= 3 { // around the end of the chunks: index and metadata
			free = need() + s
		}
		leave(free)
		before := mustStatus(t, dir)
		r := store()
		outcomes[r.code]++
		phase := "fit"
		for _, w := range []string{"chunk", ".idx", ".rev"} {
			if r.code != 0 && strings.Contains(r.stderr, w) {
				phase = "at " + w
				break
			}
		}
		log = append(log, fmt.Sprintf("%d free: %s", free, phase))
		switch r.code {
		case 0:
		case exitNoSpace:
			if !strings.Contains(strings.ToLower(r.stderr), "no space") {
				t.Errorf("free %d: exit 7 but the message does not say so: %s", free, r.stderr)
			}
			oneLine(t, "full disk", r)
			if after := mustStatus(t, dir); len(after) != len(before) {
				t.Fatalf("free %d: a failed backup changed the revisions from %d to %d", free, len(before), len(after))
			}
		default:
			t.Fatalf("free %d bytes: want exit 7 or success, got %v", free, r)
		}
		if left := tmpLeft(dir); len(left) > 0 {
			t.Errorf("free %d: tmp/ holds %v after the store ended", free, left)
		}
		revisionFiles(t, dir)
		for _, rev := range mustStatus(t, dir) {
			sum, rr := restoreSum(t, dir, rev.ID)
			if rr.code != 0 || sum != sums[firstTag(rev, "v")] {
				t.Fatalf("free %d: revision %s no longer restores bit-exactly: %v", free, rev.ID, rr)
			}
		}
		checkChunkFiles(t, dir, map[string]bool{})
		// Space freed: the same backup now succeeds.
		os.Remove(filler)
		if r.code != 0 {
			if r := store(); r.code != 0 {
				t.Fatalf("after freeing space the backup still fails: %v", r)
			}
			rev := mustStatus(t, dir)
			sum, rr := restoreSum(t, dir, "latest")
			if rr.code != 0 || sum != sums[firstTag(rev[len(rev)-1], "v")] {
				t.Fatalf("the backup after freeing space does not restore: %v", rr)
			}
		}
		if upkeep["forget"] && upkeep["purge"] { // keep the small file system from filling up for good
			for _, rev := range mustStatus(t, dir)[1:] {
				backy(t, nil, "backy-store", "-b", dir, "forget", rev.ID)
			}
			backy(t, nil, "backy-store", "-b", dir, "purge")
		}
	}
	// A first backup into a new directory of a full file system: exit 7,
	// and none of the directories the creation made stays behind (they
	// did: the layout without its marker, "no repository" to status).
	leave(0)
	fresh := filepath.Join(mnt, "new", "repo")
	if r := backup(t, fresh, im.path, ""); r.code != exitNoSpace {
		t.Errorf("first backup into a new directory of a full file system: want exit 7, got %v", r)
	}
	if _, err := os.Lstat(filepath.Join(mnt, "new")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a first backup that failed for space left %s behind (%v)", filepath.Join(mnt, "new"), err)
	}
	os.Remove(filler)
	t.Logf("%d backups on a full file system: %d failed with exit 7, %d fit (%s)", len(steps), outcomes[exitNoSpace], outcomes[0], strings.Join(log, "; "))
	if outcomes[exitNoSpace] == 0 {
		t.Errorf("no backup ran out of space: the test did not test anything")
	}
}
