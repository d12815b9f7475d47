package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/backy/backy/internal/clitest"
	"github.com/backy/backy/pkg/jobstatus"
)

// Accounts of TestWhoCanRead: an outsider (in no group of the backups), and
// a monitoring user whose only group is the one the base directory is
// shared with.
const (
	outsiderUID, outsiderGID = 65534, 65533
	monitorUID, sharedGID    = 65533, 65534
)

// as runs a command as another account, the way setpriv(1) does.
func as(t *testing.T, uid, gid int, name string, args ...string) (string, error) {
	t.Helper()
	c := exec.Command(name, args...)
	c.Env = env()
	c.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}}
	out, err := c.CombinedOutput()
	return string(out), err
}

// TestWhoCanRead runs the daemon under umask 0, the most open there is,
// with its base directory shared with a monitoring group (750), and checks
// as an account outside that group, from a path it can traverse, that no
// chunk, index, metadata, repository marker, lock, log, the status file or
// either socket (the console's, backy-nbd's) is open to it; that the
// monitoring user can run backy-check (it reads the status file) and
// still reach no repository; and that a repository an older backy left
// open (755 directories, 444 chunks) is closed by the next backup.
func TestWhoCanRead(t *testing.T) {
	dir := clitest.OtherUsersDir(t)
	os.Chmod(clitest.BinDir, 0o755)
	base := filepath.Join(dir, "base")
	os.Mkdir(base, 0o750)
	os.Chown(base, 0, sharedGID)
	os.Chmod(base, 0o750)
	port := freePort(t)
	conf, logfile := filepath.Join(dir, "backy.conf"), filepath.Join(dir, "daemon.log")
	os.WriteFile(conf, []byte(fmt.Sprintf(`[global]
base-dir = "%[1]s/base"
status-file = "%[1]s/base/run/status"
status-interval = "1s"
console-port = %[2]d
[schedules.fast]
fast = { interval = "1h", keep = 2 }
[jobs.vm1]
schedule = "fast"
source = { type = "file", path = "%[1]s/vm1.img" }
[jobs.vm2]
schedule = "fast"
directory = "nested/vm2"
source = { type = "file", path = "%[1]s/vm1.img" }
`, dir, port)), 0o644)
	// The status file and vm2's repository are below directories the
	// daemon makes: shared like the base, or backy-check would fail.
	image(t, filepath.Join(dir, "vm1.img"))

	old := syscall.Umask(0)
	d := startDaemon(t, "-c", conf, "-l", logfile)
	syscall.Umask(old)
	repoDir := filepath.Join(base, "vm1")
	eventually(t, time.Minute, "the first revision", func() (bool, string) {
		st, err := jobstatus.Read(filepath.Join(base, "run", "status"))
		return err == nil && st.Jobs["vm1"].LastResult == "ok" && st.Jobs["vm2"].LastResult == "ok", fmt.Sprint(err)
	})

	// backy-nbd on its Unix socket, also started under umask 0.
	nbdSock := filepath.Join(dir, "nbd.sock")
	syscall.Umask(0)
	nbd := exec.Command(filepath.Join(clitest.BinDir, "backy-nbd"), "-b", repoDir, "--socket", nbdSock)
	nbd.Env = env()
	err := nbd.Start()
	syscall.Umask(old)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nbd.Process.Kill(); nbd.Wait() })
	eventually(t, 30*time.Second, "backy-nbd listening", func() (bool, string) {
		_, err := os.Stat(nbdSock)
		return err == nil, fmt.Sprint(err)
	})

	chunks, _ := filepath.Glob(filepath.Join(repoDir, "chunks", "*", "*"))
	revs, _ := filepath.Glob(filepath.Join(repoDir, "revisions", "*"))
	locks, _ := filepath.Glob(filepath.Join(repoDir, "locks", "*"))
	jobLogs, _ := filepath.Glob(filepath.Join(base, ".backy-schedule", "log", "*"))
	if len(chunks) == 0 || len(revs) < 2 || len(jobLogs) == 0 {
		t.Fatalf("the repository has %d chunks, %d revision files, %d job logs", len(chunks), len(revs), len(jobLogs))
	}
	idx, _ := filepath.Glob(filepath.Join(repoDir, "revisions", "*.idx"))
	closed := append(append(append(append([]string{filepath.Join(repoDir, "backy-repository"), logfile}, chunks...), revs...), locks...), jobLogs...)
	for _, p := range closed {
		if out, err := as(t, outsiderUID, outsiderGID, "cat", p); err == nil || !strings.Contains(out, "Permission denied") {
			t.Errorf("an outsider reads %s: %v %q", p, err, out)
		}
	}
	// The monitoring group reads metadata (backy-check needs it), never
	// the disk's content: chunks and indexes.
	for _, p := range append(chunks, idx...) {
		if out, err := as(t, monitorUID, sharedGID, "cat", p); err == nil || !strings.Contains(out, "Permission denied") {
			t.Errorf("the monitoring user reads %s: %v %q", p, err, out)
		}
	}
	for _, p := range []string{repoDir, filepath.Join(repoDir, "chunks")} {
		if out, err := as(t, outsiderUID, outsiderGID, "ls", p); err == nil {
			t.Errorf("an outsider lists %s: %q", p, out)
		}
	}
	// The status file: closed to the outsider, open to the monitoring
	// group, so backy-check works as the monitoring user.
	if out, err := as(t, outsiderUID, outsiderGID, "cat", filepath.Join(base, "run", "status")); err == nil {
		t.Errorf("an outsider reads the status file: %q", out)
	}
	if out, err := as(t, monitorUID, sharedGID, filepath.Join(clitest.BinDir, "backy-check"), "-c", conf); err != nil || !strings.HasPrefix(out, "OK: 2 jobs within SLA") {
		t.Errorf("backy-check as the monitoring user: %v\n%s", err, out)
	}
	// Sockets: connecting needs write permission on them. nbdinfo is a
	// real NBD client; its connect(2) is refused before any protocol.
	consoleSock := filepath.Join(base, ".backy-schedule", "console.sock")
	for _, s := range []string{consoleSock, nbdSock} {
		st, err := os.Stat(s)
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("socket %s: %v, mode %v, want 0600", s, err, st.Mode().Perm())
		}
		for _, who := range [][2]int{{outsiderUID, outsiderGID}, {monitorUID, sharedGID}} {
			if out, err := as(t, who[0], who[1], "nbdinfo", "nbd+unix:///?socket="+s); err == nil || !strings.Contains(out, "Permission denied") {
				t.Errorf("uid %d connects to %s: %v %q", who[0], s, err, out)
			}
		}
	}
	// The owner can: the console answers on its socket, nbdinfo lists.
	conn, err := net.Dial("unix", consoleSock)
	if err != nil {
		t.Fatalf("the owner cannot reach the console socket: %v", err)
	}
	conn.Close()
	if out, err := exec.Command("nbdinfo", "--list", "nbd+unix:///?socket="+nbdSock).CombinedOutput(); err != nil {
		t.Errorf("the owner cannot list backy-nbd's exports: %v %s", err, out)
	}
	// Every mode, exactly: nothing for others anywhere.
	filepath.Walk(base, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().Perm()&0o007 != 0 {
			t.Errorf("%s has mode %v: open to others", p, fi.Mode().Perm())
		}
		return nil
	})
	d.Signal(syscall.SIGTERM)
	d.Exit(time.Minute)

	// A repository an older backy made (755 directories, 444 chunks) is
	// closed by the next write: its directories, so no file is reachable.
	oldRepo := filepath.Join(dir, "old")
	store := func() {
		c := exec.Command("sh", "-c", fmt.Sprintf("umask 022; %s/backy-extract file %s | %s/backy-store -b %s",
			clitest.BinDir, filepath.Join(dir, "vm1.img"), clitest.BinDir, oldRepo))
		c.Env = env()
		if out, err := c.CombinedOutput(); err != nil {
			t.Fatalf("backup: %v %s", err, out)
		}
	}
	store()
	filepath.Walk(oldRepo, func(p string, fi os.FileInfo, err error) error {
		if fi.IsDir() {
			os.Chmod(p, 0o755)
		} else {
			os.Chmod(p, 0o444)
		}
		return nil
	})
	old1, _ := filepath.Glob(filepath.Join(oldRepo, "chunks", "*", "*"))
	if out, err := as(t, outsiderUID, outsiderGID, "cat", old1[0]); err != nil {
		t.Fatalf("the old repository is not open as set up: %v %s", err, out)
	}
	store()
	for _, p := range old1 {
		if out, err := as(t, outsiderUID, outsiderGID, "cat", p); err == nil || !strings.Contains(out, "Permission denied") {
			t.Errorf("after the next backup an outsider still reads %s", p)
		}
	}
	if st, _ := os.Stat(oldRepo); st.Mode().Perm() != 0o700 {
		t.Errorf("the old repository's directory is %v after the next backup, want 0700", st.Mode().Perm())
	}
}
