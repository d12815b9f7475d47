package main

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/backy/backy/internal/clitest"
	"github.com/backy/backy/pkg/rbd/cephtest"
	"github.com/backy/backy/pkg/repo"
	"github.com/rogpeppe/go-internal/testscript"
)

// cephM runs the tests under cephtest.Main, which stops the test cluster
// the rados scripts share once they are done.
type cephM struct{ m *testing.M }

func (c cephM) Run() int { return cephtest.Main(c.m) }

func TestMain(m *testing.M) { clitest.Main(cephM{m}, "backy-store", run) }

func TestScripts(t *testing.T) {
	p := clitest.Params("testdata/script", clitest.BinDir)
	p.Cmds["holdlock"] = holdlock
	p.Cmds["clonerev"] = clonerev
	p.Cmds["settime"] = settime
	p.Cmds["radoschunk"] = radosChunk
	p.Cmds["radoshash"] = radoshash
	cond := p.Condition
	p.Condition = func(c string) (bool, error) {
		if c == "rados" {
			return repo.RadosAvailable, nil
		}
		return cond(c)
	}
	cephtest.ScriptSetup(&p)
	clitest.Run(t, p)
}

// holdlock REPO NAME [shared]: take a repository lock in the test process,
// which is another process for the backy-store the script runs next, and
// hold it until the script ends.
func holdlock(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: holdlock REPO NAME [shared]")
	}
	loc := args[0]
	if !repo.IsRados(loc) {
		loc = ts.MkAbs(loc)
	}
	r, err := repo.Open(loc, repo.WithCeph(repo.Ceph{Conf: ts.Getenv("CEPH_CONF")}))
	ts.Check(err)
	l, err := r.TryLock(args[1], len(args) > 2 && args[2] == "shared")
	ts.Check(err)
	ts.Defer(func() { l.Unlock(); r.Close() })
}

// clonerev REPO ID NEWID: copy a revision under another id, so a script
// can have two ids that share a prefix.
func clonerev(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 3 {
		ts.Fatalf("usage: clonerev REPO ID NEWID")
	}
	r, rev := loadrev(ts, args[0], args[1])
	idx, err := os.ReadFile(filepath.Join(r.Dir, "revisions", args[1]+".idx"))
	ts.Check(err)
	ts.Check(os.WriteFile(filepath.Join(r.Dir, "revisions", args[2]+".idx"), idx, 0o644))
	rev.ID = args[2]
	ts.Check(r.SaveRevision(rev))
}

// settime REPO ID TIME: change the time of a revision (RFC 3339), as if it
// had been made then; the metadata stays sealed. REPO may be rados:POOL/JOB.
func settime(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 3 {
		ts.Fatalf("usage: settime REPO ID TIME")
	}
	r, rev := loadrev(ts, args[0], args[1])
	t, err := time.Parse(time.RFC3339, args[2])
	ts.Check(err)
	rev.Time = t
	ts.Check(r.SaveRevision(rev))
}

func loadrev(ts *testscript.TestScript, loc, id string) (*repo.Repo, *repo.Revision) {
	if !repo.IsRados(loc) {
		loc = ts.MkAbs(loc)
	}
	r, err := repo.Open(loc, repo.WithCeph(repo.Ceph{Conf: ts.Getenv("CEPH_CONF")}))
	ts.Check(err)
	ts.Defer(func() { r.Close() })
	rev, err := r.LoadRevision(id)
	ts.Check(err)
	return r, rev
}

// radoschunk REPO damage|delete N: overwrite or delete, behind backy's
// back, the chunk object of chunk N of the newest revision of the RADOS
// repository REPO (rados:POOL/JOB).
func radosChunk(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 3 {
		ts.Fatalf("usage: radoschunk REPO damage|delete N")
	}
	conf := ts.Getenv("CEPH_CONF")
	r, err := repo.Open(args[0], repo.WithCeph(repo.Ceph{Conf: conf}))
	ts.Check(err)
	defer r.Close()
	revs, err := r.Revisions()
	ts.Check(err)
	ix, err := r.Index(revs[len(revs)-1].ID)
	ts.Check(err)
	n, err := strconv.Atoi(args[2])
	ts.Check(err)
	loc, _ := repo.ParseRadosLocation(args[0])
	oid := "chunk." + ix.Hashes[n].String()
	switch args[1] {
	case "damage":
		_, err = cephtest.Rados(conf, []byte("not a chunk"), "-p", loc.Pool, "put", oid, "-")
	case "delete":
		_, err = cephtest.Rados(conf, nil, "-p", loc.Pool, "rm", oid)
	default:
		ts.Fatalf("usage: radoschunk REPO damage|delete N")
	}
	ts.Check(err)
}

// radoshash POOL FILE: write to FILE every object of POOL with the SHA-256
// of its content and of its omap, so a script can prove with cmp that a
// failed command changed nothing in a pool (the RADOS treehash; xattrs,
// which hold the locks, are left out as locks/ is by treehash).
func radoshash(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: radoshash POOL FILE")
	}
	digest, err := poolDigest(ts.Getenv("CEPH_CONF"), args[0])
	ts.Check(err)
	ts.Check(os.WriteFile(ts.MkAbs(args[1]), []byte(digest), 0o644))
}
