package jobstatus

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/backy/backy/pkg/repo"
)

// addRevision commits an empty (all-zero) revision, as backy-store would.
func addRevision(t *testing.T, dir string, at time.Time, trust string, tags ...string) string {
	t.Helper()
	r, err := repo.OpenOrCreate(dir)
	if err != nil {
		t.Fatal(err)
	}
	rev := &repo.Revision{ID: repo.NewRevisionID(), Time: at, Kind: "full", Tags: tags, Trust: trust, Size: 1 << 20}
	if trust == repo.Distrusted {
		rev.Damage = []string{"chunk abc: corrupt"}
	}
	if err := r.Commit(rev, repo.NewIndex(rev.Size)); err != nil {
		t.Fatal(err)
	}
	return rev.ID
}

func TestScanRepo(t *testing.T) {
	dir := t.TempDir()
	if info := ScanRepo(Location{Dir: filepath.Join(dir, "missing")}); info.Err != "" || info.Revisions != 0 {
		t.Errorf("missing directory: %+v", info)
	}
	if info := ScanRepo(Location{Dir: dir}); info.Err != "" {
		t.Errorf("empty directory: %+v", info)
	}
	junk := filepath.Join(dir, "junk")
	os.MkdirAll(junk, 0o755)
	os.WriteFile(filepath.Join(junk, "file"), nil, 0o644)
	if info := ScanRepo(Location{Dir: junk}); info.Err == "" {
		t.Error("a directory holding something else is not reported")
	}

	r := filepath.Join(dir, "vm1")
	addRevision(t, r, t0.Add(-48*time.Hour), repo.Trusted, "daily", "weekly")
	addRevision(t, r, t0.Add(-24*time.Hour), repo.Verified, "daily")
	bad := addRevision(t, r, t0, repo.Distrusted, "daily")
	info := ScanRepo(Location{Dir: r})
	if info.Err != "" || info.Revisions != 3 || info.Distrusted != 1 {
		t.Fatalf("%+v", info)
	}
	if !info.Newest.Equal(t0) || !info.NewestTrusted.Equal(t0.Add(-24*time.Hour)) {
		t.Errorf("newest %s, newest trusted %s", info.Newest, info.NewestTrusted)
	}
	// The distrusted revision does not count for its slot: the daily tag
	// is still due for a retry.
	if !info.Last["daily"].Equal(t0.Add(-24*time.Hour)) || !info.Last["weekly"].Equal(t0.Add(-48*time.Hour)) {
		t.Errorf("last by tag %v", info.Last)
	}
	if len(info.Damage) != 2 || info.Damage[0] != "revision "+bad {
		t.Errorf("damage %v", info.Damage)
	}
	os.WriteFile(filepath.Join(r, "revisions", "aaaaaaaaaaaaaaaa.rev"), []byte("{"), 0o644)
	if info := ScanRepo(Location{Dir: r}); info.DamagedMeta != 1 || info.Revisions != 3 {
		t.Errorf("unreadable metadata: %+v", info)
	}
	infos := ScanRepos([]Location{{Dir: r}, {Dir: filepath.Join(dir, "missing")}, {Dir: r}}, 2)
	if infos[0].Revisions != 3 || infos[1].Revisions != 0 || infos[2].Revisions != 3 {
		t.Errorf("ScanRepos: %+v", infos)
	}
}

// TestScanRepoConsistency: the newest revision's consistency, and the
// crash-consistent revisions in a row counted from the newest; one of
// unknown consistency ends the run.
func TestScanRepoConsistency(t *testing.T) {
	revs := []*repo.Revision{
		{ID: "a", Time: time.Unix(100, 0), Consistency: "crash"},
		{ID: "b", Time: time.Unix(200, 0)},
		{ID: "e", Time: time.Unix(500, 0), Consistency: "crash", ConsistencyReason: "late"},
		{ID: "c", Time: time.Unix(300, 0), Consistency: "frozen", FrozenSeconds: 0.5},
		{ID: "d", Time: time.Unix(400, 0), Consistency: "crash"},
	}
	var info RepoInfo
	consistency(&info, revs)
	if info.Consistency != "crash" || info.ConsistencyReason != "late" || info.CrashRuns != 2 {
		t.Errorf("got %+v, want crash (late), 2 in a row", info)
	}
	info = RepoInfo{}
	consistency(&info, revs[:2])
	if info.Consistency != "" || info.CrashRuns != 0 {
		t.Errorf("got %+v, want unknown, 0 in a row", info)
	}
}
