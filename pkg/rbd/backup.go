package rbd

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/backy/backy/pkg/extent"
	"github.com/backy/backy/pkg/quiesce"
	"github.com/backy/backy/pkg/repo"
)

// Options tune Backup.
type Options struct {
	// Image is what to read. With a snapshot (POOL/IMAGE@SNAP) that
	// snapshot is streamed and no snapshot is made or removed; without,
	// Backup makes SnapPrefix+ID first.
	Image    Image
	BaseFrom string // repository whose newest revision names the base
	// Repo says how to reach BaseFrom (Ceph settings of a rados: location).
	Repo        []repo.Option
	FromSnap    string // base snapshot given by name
	Full        bool   // ignore any base
	WholeObject bool   // whole changed objects, as rbd export-diff --whole-object
	ID          string // default: a fresh revision id
	// Sample > 0 writes a sample stream of that many percent of the 4 MiB
	// blocks of Image (which must name a snapshot), chosen with Seed.
	Sample float64
	Seed   uint64
	// Quiesce says how to make the new snapshot consistent (freeze/thaw
	// commands, an agent's snapshot command, the QEMU guest agent); the
	// zero value takes a plain, crash-consistent snapshot. The commands
	// get BACKY_JOB (Job), BACKY_POOL, BACKY_IMAGE and BACKY_SNAPSHOT in
	// their environment.
	Quiesce quiesce.Options
	Job     string
	// Log receives notes for the operator (why a stream is full, which
	// snapshots were removed); nil discards them.
	Log *slog.Logger
}

func (o *Options) log() *slog.Logger {
	if o.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return o.Log
}

// Result says what Backup wrote and did.
type Result struct {
	Header  extent.Header
	Summary extent.Summary
	Created bool     // the snapshot was made by this run
	Removed []string // older backy snapshots removed afterwards
}

// cleanupTimeout bounds the removal of snapshots after a failure, which
// runs even when ctx was cancelled.
const cleanupTimeout = 2 * time.Minute

// Backup writes an extent stream of an RBD image to out (see Options). On
// failure it writes no END record and removes the snapshot it made, so
// neither a revision nor a stray snapshot is left behind. After a
// complete stream it removes the older backy snapshots of the image except
// the base, which must stay until the new revision is surely stored.
func Backup(ctx context.Context, e Engine, out io.Writer, opt Options) (*Result, error) {
	img := opt.Image
	snaps, err := e.Snapshots(ctx, img)
	if err != nil {
		return nil, err
	}
	if img.Snap != "" && !slices.ContainsFunc(snaps, func(s Snap) bool { return s.Name == img.Snap }) {
		return nil, fmt.Errorf("%w: %s has no snapshot %s", ErrNotFound, img.Spec(), img.Snap)
	}
	if opt.Sample > 0 {
		return sample(ctx, e, out, opt)
	}
	base, err := chooseBase(&opt, snaps)
	if err != nil {
		return nil, err
	}
	res := &Result{}
	if img.Snap == "" {
		id := opt.ID
		if id == "" {
			id = repo.NewRevisionID()
		}
		if err := checkID(id); err != nil {
			return nil, err
		}
		img.Snap = SnapPrefix + id
		if slices.ContainsFunc(snaps, func(s Snap) bool { return s.Name == img.Snap }) {
			return nil, fmt.Errorf("%w: %s", ErrSnapExists, img)
		}
		q := opt.Quiesce
		q.Env = append(q.Env, "BACKY_JOB="+opt.Job, "BACKY_POOL="+img.Pool, "BACKY_IMAGE="+img.Name, "BACKY_SNAPSHOT="+img.Snap)
		q.Log = cmp.Or(q.Log, opt.Log)
		qr, err := quiesce.Snapshot(ctx, q, snapshotter{e, img})
		if err != nil {
			return nil, err
		}
		res.Created = true
		res.Header.Consistency, res.Header.Reason, res.Header.Frozen = qr.Consistency, qr.Reason, qr.Frozen
	}
	res.Header.Kind, res.Header.Source, res.Header.Snapshot = extent.Full, img.Source(), img.Snap
	if base != "" {
		res.Header.Kind, res.Header.Base = extent.Differential, base
	}
	em := newEmitter(out, res.Header, 0, 0)
	err = e.Diff(ctx, DiffRequest{Image: img, From: base, WholeObject: opt.WholeObject}, em)
	if err == nil {
		res.Summary, err = em.finish()
	}
	if err != nil {
		if res.Created {
			rctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
			defer cancel()
			if rerr := e.RemoveSnapshot(rctx, img); rerr != nil {
				opt.log().Info(fmt.Sprintf("could not remove snapshot %s after the failure: %v", img, rerr))
			}
		}
		return nil, err
	}
	res.Header.Size = em.hdr.Size
	if res.Created {
		res.Removed, err = removeOld(ctx, e, img, base, snaps, &opt)
	}
	return res, err
}

// snapshotter is the one snapshot a backup makes, for package quiesce.
type snapshotter struct {
	e   Engine
	img Image
}

func (s snapshotter) Create(ctx context.Context) error { return s.e.CreateSnapshot(ctx, s.img) }
func (s snapshotter) Remove(ctx context.Context) error { return s.e.RemoveSnapshot(ctx, s.img) }
func (s snapshotter) Exists(ctx context.Context) (bool, error) {
	snaps, err := s.e.Snapshots(ctx, s.img)
	return slices.ContainsFunc(snaps, func(x Snap) bool { return x.Name == s.img.Snap }), err
}

// sample writes a sample stream of the snapshot img.Snap.
func sample(ctx context.Context, e Engine, out io.Writer, opt Options) (*Result, error) {
	hdr := extent.Header{Kind: extent.Sample, Source: opt.Image.Source(), Snapshot: opt.Image.Snap}
	if opt.Image.Snap == "" {
		return nil, fmt.Errorf("%w: a sample is read from a snapshot: give POOL/IMAGE@SNAP", ErrBadName)
	}
	em := newEmitter(out, hdr, opt.Sample, opt.Seed)
	if err := e.Diff(ctx, DiffRequest{Image: opt.Image, Sample: true}, em); err != nil {
		return nil, err
	}
	sum, err := em.finish()
	if err != nil {
		return nil, err
	}
	hdr.Size = em.hdr.Size
	return &Result{Header: hdr, Summary: sum}, nil
}

// removeOld removes the backy snapshots in snaps, the listing made before
// img.Snap was created, except base. Every snapshot in that listing is
// older than img.Snap; one made since belongs to a run that is still going
// on and is left alone, and snapshots without the backy prefix are never
// touched. Reusing the listing saves asking the cluster again (an rbd
// process for the CLI engine).
func removeOld(ctx context.Context, e Engine, img Image, base string, snaps []Snap, opt *Options) ([]string, error) {
	var removed, errs []string
	for _, s := range snaps {
		if s.Name == img.Snap || s.Name == base || !strings.HasPrefix(s.Name, SnapPrefix) {
			continue
		}
		if err := e.RemoveSnapshot(ctx, img.At(s.Name)); err != nil {
			errs = append(errs, err.Error())
			continue
		}
		removed = append(removed, s.Name)
		opt.log().Info(fmt.Sprintf("removed old snapshot %s", img.At(s.Name)))
	}
	if len(errs) > 0 {
		return removed, fmt.Errorf("%w: %s", ErrCleanup, strings.Join(errs, "; "))
	}
	return removed, nil
}
