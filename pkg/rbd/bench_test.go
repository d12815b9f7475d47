package rbd_test

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/backy/backy/pkg/rbd"
	"github.com/backy/backy/pkg/rbd/cephtest"
	"github.com/backy/backy/pkg/repo"
	"github.com/backy/backy/pkg/store"
)

// The benchmarks back up a 1 GiB image of random data on the test cluster,
// full and with 1% of its 4 MiB blocks changed, with each engine, either
// into io.Discard (extract: the engine alone) or through backy-store into
// a repository (backup: the pipeline an operator runs). The memstore OSD
// runs on the same machine, so its work is in the figures too. The whole
// runs are measured with Ceph's default monitor settings and with the
// proposal interval of Ceph's own test clusters (monSettings).
//
//	go test -tags librbd,pacific -run '^$' -bench . -benchtime 3x ./pkg/rbd

const benchSize = 1 << 30

var benchImg rbd.Image

// benchImage creates the image once per process: rbd import of random data.
func benchImage(b *testing.B, conf string) rbd.Image {
	b.Helper()
	if benchImg.Name != "" {
		return benchImg
	}
	img := rbd.Image{Pool: "rbd", Name: "bench-1g"}
	pr, pw := io.Pipe()
	go func() {
		rng := rand.NewChaCha8([32]byte{7})
		buf := make([]byte, 4*MiB)
		var err error
		for n := 0; n < benchSize && err == nil; n += len(buf) {
			rng.Read(buf)
			_, err = pw.Write(buf)
		}
		pw.CloseWithError(err)
	}()
	cephtest.Rbd(b, conf, pr, "import", "--no-progress", "-", img.Spec())
	benchImg = img
	return img
}

// change1Percent overwrites 1% of the 4 MiB blocks (3 of 256) with new
// random data.
func change1Percent(b *testing.B, conf string, img rbd.Image, seed uint64) {
	b.Helper()
	rng := rand.New(rand.NewPCG(seed, 1))
	nblocks := benchSize / repo.ChunkSize
	var ws []write
	for _, n := range rng.Perm(nblocks)[:(nblocks+99)/100] {
		ws = append(ws, at(int64(n)*repo.ChunkSize, repo.ChunkSize, uint32(rng.Uint32())))
	}
	slices.SortFunc(ws, func(a, b write) int { return cmp.Compare(a.off, b.off) }) // import-diff wants them ascending
	writeImage(b, conf, img, benchSize, ws...)
}

// run extracts (and, with r, stores) one stream and returns its data bytes.
func run(b *testing.B, e rbd.Engine, r *repo.Repo, opt rbd.Options) int64 {
	b.Helper()
	if r == nil {
		res, err := rbd.Backup(context.Background(), e, io.Discard, opt)
		must(b, err)
		return res.Summary.DataBytes
	}
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		_, err := store.Store(context.Background(), r, pr, store.Options{})
		pr.CloseWithError(err)
		done <- err
	}()
	res, err := rbd.Backup(context.Background(), e, pw, opt)
	pw.CloseWithError(err)
	must(b, err)
	must(b, <-done)
	return res.Summary.DataBytes
}

// monSettings are the monitor settings the whole runs are measured with:
// Ceph's defaults, and the proposal interval Ceph's own test clusters use.
// Each snapshot create and remove is a monitor change, and the monitor
// holds a change until paxos_propose_interval after its last commit (see
// package cephtest), so with the defaults a removal right after a short
// differential stream waits about a second for the commit of the snapshot
// made before the stream.
var monSettings = []struct {
	name     string
	interval string
}{
	{"mon-default", cephtest.DefaultProposeInterval},
	{"mon-interval-0.01", cephtest.TestProposeInterval},
}

func setMon(b *testing.B, conf, interval string) {
	b.Helper()
	must(b, cephtest.SetMonConfig(conf, "paxos_propose_interval", interval))
	must(b, cephtest.SetMonConfig(conf, "paxos_min_wait", cephtest.DefaultMinWait))
}

// monQuiet waits (outside the timer) until the monitor has made no commit
// for longer than the proposal interval, so that a timed run starts on an
// idle monitor instead of paying for the monitor commits of the run before
// it (a benchmark artifact: runs are seconds apart here, hours in use).
func monQuiet(b *testing.B, conf, interval string) {
	b.Helper()
	quiet := 100 * time.Millisecond
	if interval == cephtest.DefaultProposeInterval {
		quiet = 1100 * time.Millisecond
	}
	must(b, cephtest.WaitMonQuiet(conf, quiet, 2*time.Minute))
}

func BenchmarkBackup(b *testing.B) {
	conf := cephtest.Start(b)
	img := benchImage(b, conf)
	b.Cleanup(func() { setMon(b, conf, cephtest.DefaultProposeInterval) })
	seed := uint64(1)
	for _, e := range engines(b, conf) {
		for _, mode := range []string{"extract", "backup"} {
			// full and diff-1pct are whole runs, as an operator times
			// them: snapshot, stream, removal of the snapshot before the
			// base.
			for _, mon := range monSettings {
				setMon(b, conf, mon.interval)
				b.Run(fmt.Sprintf("%s/%s/%s/full", e.Name(), mode, mon.name), func(b *testing.B) {
					b.SetBytes(benchSize)
					for range b.N {
						b.StopTimer()
						var r *repo.Repo
						if mode == "backup" {
							r = newRepo(b)
						}
						monQuiet(b, conf, mon.interval)
						b.StartTimer()
						run(b, e, r, rbd.Options{Image: img, Full: true})
					}
				})
				b.Run(fmt.Sprintf("%s/%s/%s/diff-1pct", e.Name(), mode, mon.name), func(b *testing.B) {
					benchDiff(b, conf, e, img, mode == "backup", false, mon.interval, &seed)
				})
			}
			// diff-1pct-stream leaves the snapshots out (made outside the
			// timer): it is the part that grows with the image, and no
			// monitor setting touches it.
			setMon(b, conf, cephtest.DefaultProposeInterval)
			b.Run(fmt.Sprintf("%s/%s/diff-1pct-stream", e.Name(), mode), func(b *testing.B) {
				benchDiff(b, conf, e, img, mode == "backup", true, cephtest.DefaultProposeInterval, &seed)
			})
		}
	}
}

func benchDiff(b *testing.B, conf string, e rbd.Engine, img rbd.Image, backup, streamOnly bool, interval string, seed *uint64) {
	b.StopTimer()
	var r *repo.Repo
	base := rbd.Options{Image: img, Full: true, ID: repo.NewRevisionID()}
	if backup {
		r = newRepo(b)
		base.BaseFrom = r.Dir
	}
	run(b, e, r, base) // the base: a full stream whose snapshot the diff starts from
	snap := rbd.SnapPrefix + base.ID
	var data int64
	for range b.N {
		b.StopTimer()
		*seed++
		change1Percent(b, conf, img, *seed)
		opt := rbd.Options{Image: img, BaseFrom: base.BaseFrom, ID: repo.NewRevisionID()}
		if !backup {
			opt.FromSnap = snap
		}
		if streamOnly {
			opt.Image = img.At(rbd.SnapPrefix + opt.ID)
			cephtest.Rbd(b, conf, nil, "snap", "create", "--no-progress", opt.Image.String())
			opt.ID = ""
			b.Cleanup(func() { cephtest.RunRbd(conf, nil, "snap", "rm", "--no-progress", opt.Image.String()) })
		}
		snap = rbd.SnapPrefix + opt.ID
		if streamOnly {
			snap = opt.Image.Snap
		} else {
			monQuiet(b, conf, interval)
		}
		b.StartTimer()
		data += run(b, e, r, opt)
	}
	b.ReportMetric(float64(data)/float64(b.N)/MiB, "MiB-data/op")
}
