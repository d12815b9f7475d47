package main

// The daemon's whole cycle on a RADOS repository, on the throw-away Ceph
// cluster: backup, verify, expire and pool purge by the real daemon; then a
// second "server" (its own process and configuration) restores bit for
// bit, backy-check reports the job, backy-nbd serves it to nbdinfo and
// nbdcopy. The daemon and backy-check find the cluster through ceph-conf
// in backy.conf only: CEPH_CONF is not in their environment.

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/backy/backy/internal/clitest"
	"github.com/backy/backy/pkg/jobstatus"
	"github.com/backy/backy/pkg/rbd/cephtest"
	"github.com/backy/backy/pkg/repo"
)

const radosConf = `[global]
base-dir = "%[1]s/base"
rados-pool = %[2]q
ceph-conf = %[3]q
worker-limit = 1
status-interval = "1s"
console-addresses = []
backoff-initial = "1s"
backoff-max = "2s"

[schedules.fast]
fast = { interval = "2s", keep = 1 }

[jobs.vm1]
schedule = "fast"
verify-sample = 100
source = { type = "file", path = "%[1]s/vm1.img" }
`

// radosEnv is the environment of the processes of a RADOS test: the
// cluster, short leases and no purge grace, so that the daemon's purge
// sweeps what expire left.
func radosEnv(cephConf string) []string {
	return append(rbdEnv(cephConf), repo.LeaseEnv+"=3s", repo.GraceEnv+"=0s")
}

// configuredEnv is radosEnv without the cluster: for the processes that
// find it through backy.conf (ceph-conf).
func configuredEnv() []string {
	var out []string
	for _, kv := range env() {
		if !strings.HasPrefix(kv, "CEPH_CONF=") {
			out = append(out, kv)
		}
	}
	return append(out, repo.LeaseEnv+"=3s", repo.GraceEnv+"=0s")
}

// radosRevs lists the revisions of a RADOS job as backy-store status
// --json prints them, oldest first.
func radosRevs(t *testing.T, cephConf, loc string) []string {
	t.Helper()
	c := exec.Command(filepath.Join(clitest.BinDir, "backy-store"), "-b", loc, "status", "--json")
	c.Env = radosEnv(cephConf)
	out, err := c.Output()
	if err != nil {
		return nil // not created yet, or busy
	}
	var revs []struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(out, &revs); err != nil {
		t.Fatalf("status --json: %v: %s", err, out)
	}
	var ids []string
	for _, r := range revs {
		ids = append(ids, r.ID)
	}
	return ids
}

func needRados(t *testing.T) string {
	t.Helper()
	if !repo.RadosAvailable {
		t.Skip("built without RADOS (tags librbd,pacific)")
	}
	return cephtest.Start(t)
}

func TestRadosEndToEnd(t *testing.T) {
	cephConf := needRados(t)
	pool := cephtest.Pool(t, cephConf, fmt.Sprintf("e2e-rados-%d", os.Getpid()))
	dir := t.TempDir()
	img := make([]byte, 6<<20)
	rng := rand.New(rand.NewPCG(7, 8))
	for i := range img[1<<20 : 5<<20] {
		img[1<<20+i] = byte(rng.Uint32())
	}
	os.WriteFile(filepath.Join(dir, "vm1.img"), img, 0o644)
	cfg := filepath.Join(dir, "backy.conf")
	os.WriteFile(cfg, []byte(fmt.Sprintf(radosConf, dir, pool, cephConf)), 0o644)
	loc := "rados:" + pool + "/vm1"
	base := filepath.Join(dir, "base")
	d := startDaemonEnv(t, configuredEnv(), "-c", cfg, "-l", filepath.Join(dir, "daemon.log"))

	// Backups until the first revision was expired (keep 1), and the
	// runs' purge swept the pool.
	var first string
	eventually(t, 40*time.Second, "a first revision", func() (bool, string) {
		revs := radosRevs(t, cephConf, loc)
		if len(revs) > 0 {
			first = revs[0]
		}
		return first != "", d.Stderr()
	})
	eventually(t, 40*time.Second, "the first revision expired", func() (bool, string) {
		revs := radosRevs(t, cephConf, loc)
		return len(revs) > 0 && revs[0] != first, fmt.Sprint(revs)
	})
	eventually(t, 30*time.Second, "a successful run after the expiry", func() (bool, string) {
		st, err := jobstatus.Read(filepath.Join(base, "status"))
		return err == nil && st.Jobs["vm1"].LastResult == "ok" && st.Jobs["vm1"].LastRevision != first, fmt.Sprint(err)
	})
	// backy-check reports the job from the daemon's status. The SLA of a
	// 2 s schedule is 3 s, which a loaded machine's run can outlast: the
	// plugin must say OK at some moment of the next half minute (right
	// after a run), not at one chosen instant.
	eventually(t, 30*time.Second, "backy-check OK", func() (bool, string) {
		check := exec.Command(filepath.Join(clitest.BinDir, "backy-check"), "-c", cfg)
		check.Env = configuredEnv()
		out, err := check.Output()
		return err == nil && strings.HasPrefix(string(out), "OK: 1 job within SLA"), fmt.Sprint(err, "\n", string(out))
	})
	d.Signal(syscall.SIGTERM)
	if code := d.Exit(time.Minute); code != 0 {
		t.Fatalf("daemon exit %d: %s", code, d.Stderr())
	}
	log, _ := os.ReadFile(filepath.Join(base, ".backy-schedule", "log", "vm1.log"))
	for _, want := range []string{
		"--base-from " + loc + " --ceph-conf " + cephConf + " |",
		"backy-store -b " + loc + " --ceph-conf " + cephConf + " --tags fast",
		"verify ", "--sample 100%", "matches the stream",
		"backy-store -b " + loc + " --ceph-conf " + cephConf + " expire --schedule fast=2s:1",
		"backy-store -b " + loc + " --ceph-conf " + cephConf + " purge --min-interval 24h0m0s",
		"run succeeded",
	} {
		if !bytes.Contains(log, []byte(want)) {
			t.Errorf("job log lacks %q:\n%s", want, log)
		}
	}
	// Only the first run swept the pool; later runs skipped it.
	if n := bytes.Count(log, []byte("purge --min-interval")); n < 2 {
		t.Errorf("%d purges in the job log, want one per run", n)
	}
	if _, err := os.Stat(filepath.Join(base, "vm1")); err == nil {
		t.Errorf("a directory repository appeared under base-dir")
	}

	// A second server: its own configuration and base directory, the same
	// pool; it only reads.
	dir2 := t.TempDir()
	cfg2 := filepath.Join(dir2, "backy.conf")
	os.WriteFile(cfg2, []byte(fmt.Sprintf(radosConf, dir2, pool, cephConf)), 0o644)
	revs := radosRevs(t, cephConf, loc)
	if len(revs) != 1 || revs[0] == first {
		t.Fatalf("revisions after the daemon stopped: %v (first was %s), want one newer", revs, first)
	}
	restored := filepath.Join(dir2, "restored.img")
	restore := exec.Command(filepath.Join(clitest.BinDir, "backy-restore"), "-b", loc, "-r", "latest", restored)
	restore.Env, restore.Dir = radosEnv(cephConf), dir2
	if out, err := restore.CombinedOutput(); err != nil {
		t.Fatalf("restore on the second server: %v: %s", err, out)
	}
	got, _ := os.ReadFile(restored)
	if sha256.Sum256(got) != sha256.Sum256(img) {
		t.Errorf("the restore (%d bytes) differs from the image (%d bytes)", len(got), len(img))
	}

	// backy-nbd on the second server serves the revision.
	sock := filepath.Join(dir2, "nbd.sock")
	nbd := exec.Command(filepath.Join(clitest.BinDir, "backy-nbd"), "-b", loc, "--socket", sock)
	nbd.Env = radosEnv(cephConf)
	if err := nbd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nbd.Process.Kill(); nbd.Wait() })
	eventually(t, 30*time.Second, "backy-nbd listening", func() (bool, string) {
		_, err := os.Stat(sock)
		return err == nil, fmt.Sprint(err)
	})
	uri := "nbd+unix:///" + revs[0] + "?socket=" + sock
	if out, err := exec.Command("nbdinfo", "--list", "nbd+unix:///?socket="+sock).CombinedOutput(); err != nil || !strings.Contains(string(out), revs[0]) {
		t.Errorf("nbdinfo --list: %v\n%s", err, out)
	}
	copied := filepath.Join(dir2, "nbdcopy.img")
	if out, err := exec.Command("nbdcopy", uri, copied).CombinedOutput(); err != nil {
		t.Fatalf("nbdcopy: %v: %s", err, out)
	}
	got, _ = os.ReadFile(copied)
	if !bytes.Equal(got, img) {
		t.Errorf("nbdcopy of %s: %d bytes unlike the image", revs[0], len(got))
	}
}
