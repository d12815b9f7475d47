package nbdmount

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/backy/backy/pkg/flock"
	"github.com/backy/backy/pkg/fsdetect"
	"github.com/backy/backy/pkg/nbdrepo"
	"github.com/backy/backy/pkg/nbdserver"
	"github.com/backy/backy/pkg/partition"
	"github.com/backy/backy/pkg/repo"
	"github.com/backy/backy/pkg/upkeep"
)

// Names in the mount point besides the partitions' entries.
const (
	lockName   = ".backy-nbd.lock"
	imagesName = ".images"
	readmeName = "README.txt"
	readmeHead = "backy-nbd mount:"
)

// mountTimeout bounds how long one helper may take to mount.
const mountTimeout = 30 * time.Second

// Options are what backy-nbd mount is told on its command line.
type Options struct {
	Repo        string        // a directory or rados:POOL/JOB
	Open        []repo.Option // how to reach it (Ceph settings)
	Spec        string        // revision spec, "" = latest
	Mountpoint  string        // an existing, empty directory
	CacheChunks int           // 0 = DefaultCacheChunks
	Stderr      io.Writer     // what the user is told: one line per partition
	// Logger receives read errors (naming the chunk) and partition
	// table problems; nil discards them.
	Logger *slog.Logger
}

// entry is one partition (or the whole disk) as it appears in the mount
// point: NAME.img always, NAME/ when fuse2fs can read it.
type entry struct {
	name   string               // "p1" or "disk"
	export string               // catalog name: "ID/p1" or "ID"
	part   *partition.Partition // nil for the whole disk
	x      nbdserver.Export
	kind   fsdetect.Kind
	note   string // why there is no tree, "" when there is one

	mu      sync.Mutex
	fuse2fs *helper      // the running fuse2fs of its tree, nil when none
	prog    *fuse2fsProg // the program it runs
	stderr  io.Writer
}

// poison ends the entry's fuse2fs before a read error can reach it, unless
// that fuse2fs passes the error on as EIO (see images.go); the mount loop
// mounts the tree again.
func (e *entry) poison(err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	h := e.fuse2fs
	if h == nil || e.prog.passesErrors {
		return
	}
	select {
	case <-h.done:
		return
	default:
	}
	h.poisoned.Store(true)
	fmt.Fprintf(e.stderr, "%s: %v: restarting fuse2fs, the read that met it fails\n", e.name, err)
	// Not waited for: its thread in this read cannot exit before the
	// reply. After kill(2) returns, no thread of it runs its own code
	// again, so the error this read returns is never seen by it.
	_ = h.cmd.Process.Signal(syscall.SIGKILL)
}

func (e *entry) what() string {
	if e.part == nil {
		return "whole disk (no partition table)"
	}
	p := e.part
	s := fmt.Sprintf("partition %d, %s, %s at byte %d", p.Number, p.Type, upkeep.HumanBytes(p.Size), p.Start)
	if p.Name != "" {
		s += fmt.Sprintf(", name %q", p.Name)
	}
	return s
}

// Mount shows the revision opt.Spec below opt.Mountpoint and stays until
// ctx is cancelled (Ctrl-C, SIGTERM: then it unmounts everything and
// returns nil) or a helper dies (then it unmounts the rest and returns
// ErrHelperDied). Nothing is left mounted when it returns.
func Mount(ctx context.Context, opt Options) (err error) {
	stderr := opt.Stderr
	if stderr == nil {
		stderr = io.Discard
	}
	log := opt.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	mp, err := mountpoint(opt.Mountpoint)
	if err != nil {
		return err
	}
	fusermount, err := findHelper("fusermount3")
	if err != nil {
		return err
	}
	if err := checkFUSE(); err != nil {
		return err
	}
	lock, err := lockMountpoint(mp, fusermount, stderr)
	if err != nil {
		return err
	}
	defer func() {
		os.Remove(filepath.Join(mp, lockName))
		lock.Unlock()
	}()
	if err := checkEmpty(mp); err != nil {
		return err
	}

	r, err := repo.Open(opt.Repo, opt.Open...)
	if err != nil {
		return err
	}
	defer r.Close()
	if opt.CacheChunks == 0 {
		opt.CacheChunks = DefaultCacheChunks
	}
	cat, err := nbdrepo.New(r, nbdrepo.Options{CacheChunks: opt.CacheChunks, Logger: log})
	if err != nil {
		return err
	}
	defer cat.Close()
	rev, err := r.Find(opt.Spec)
	if err != nil {
		return err
	}
	entries, err := plan(cat, rev, log)
	defer func() {
		for _, e := range entries {
			if e.x != nil {
				e.x.Close()
			}
		}
	}()
	if err != nil {
		return err
	}
	var fuse2fs, fallback *fuse2fsProg
	for _, e := range entries {
		if e.kind.IsExt() && e.note == "" {
			if fuse2fs, fallback, err = findFuse2fs(); err != nil {
				return err
			}
			break
		}
	}

	s := &session{mp: mp, fusermount: fusermount, stderr: stderr, died: make(chan *helper, 64)}
	defer func() {
		s.teardown()
		s.removeEntries(entries)
	}()
	for _, e := range entries {
		e.stderr = stderr
		for _, dev := range []*entry{nil, e} {
			name := e.name + ".img"
			if dev != nil {
				name = "." + e.name + ".fuse2fs"
			}
			var start int64
			if e.part != nil {
				start = e.part.Start
			}
			f := &imageFile{x: e.x, dev: dev, mtime: rev.Time, uid: uint32(os.Getuid()), gid: uint32(os.Getgid()), log: log, name: name}
			if v, ok := e.x.(viewer); ok {
				f.store = newPageStore(v, start, log, name)
			}
			s.files = append(s.files, f)
		}
	}
	images := filepath.Join(mp, imagesName)
	if err := os.Mkdir(images, 0o755); err != nil {
		return fmt.Errorf("nbdmount: %w", err)
	}
	if s.images, err = mountImages(images, s.files); err != nil {
		return fmt.Errorf("%w: image directory %s: %w", ErrNoFUSE, images, err)
	}
	for _, e := range entries {
		if err := os.Symlink(filepath.Join(imagesName, e.name+".img"), filepath.Join(mp, e.name+".img")); err != nil {
			return fmt.Errorf("nbdmount: %w", err)
		}
	}
	for _, e := range entries {
		if !e.kind.IsExt() || e.note != "" {
			continue
		}
		if err := os.Mkdir(filepath.Join(mp, e.name), 0o755); err != nil {
			return fmt.Errorf("nbdmount: %w", err)
		}
		err := s.mountTree(ctx, e, fuse2fs)
		var he *helperError
		if errors.As(err, &he) && fallback != nil && ctx.Err() == nil {
			fmt.Fprintf(stderr, "%s: fuse2fs %s refused it (%s), trying %s\n", e.name, fuse2fs, he.h.tail.String(), fallback)
			err = s.mountTree(ctx, e, fallback)
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if !errors.As(err, &he) {
				return err
			}
			// A file system fuse2fs refuses (damaged, unknown feature) keeps its image.
			e.note = "fuse2fs cannot read it: " + he.h.tail.String()
			os.Remove(filepath.Join(mp, e.name))
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	for _, e := range entries {
		fmt.Fprintf(stderr, "%s\n", describeEntry(mp, e))
		if e.note == "" && e.prog != nil && !e.prog.passesErrors {
			fmt.Fprintf(stderr, "%s: fuse2fs %s would turn a read error into wrong bytes: a damaged chunk restarts it and the read fails with ENOTCONN, not EIO (scripts/deps.sh builds one that gives EIO; see backy-nbd(1))\n", e.name, e.prog)
		}
	}
	fmt.Fprintf(stderr, "revision %s mounted at %s: Ctrl-C or backy-nbd umount %s to unmount\n", rev.ID, mp, mp)
	// the README comes last: its appearance says everything is mounted
	if err := writeReadme(mp, rev, entries); err != nil {
		return err
	}

	imagesDone := make(chan struct{})
	go func() { s.images.Wait(); close(imagesDone) }()
	for {
		select {
		case <-ctx.Done():
			return nil
		case h := <-s.died:
			if h.poisoned.Load() {
				if err := s.remount(ctx, h.entry); err != nil {
					return err
				}
				continue
			}
			if !h.ended {
				return h.exited()
			}
		case <-imagesDone:
			s.images = nil
			return fmt.Errorf("%w: the image directory %s was unmounted", ErrHelperDied, images)
		}
	}
}

// mountpoint checks that dir is a directory and returns its absolute,
// symlink-free path, as the mount table names it.
func mountpoint(dir string) (string, error) {
	if dir == "" {
		return "", fmt.Errorf("%w: none given", ErrMountpoint)
	}
	abs, err := filepath.Abs(dir)
	if err == nil {
		abs, err = filepath.EvalSymlinks(abs)
	}
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrMountpoint, err)
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrMountpoint, err)
	}
	if !fi.IsDir() {
		return "", fmt.Errorf("%w: %s is not a directory", ErrMountpoint, dir)
	}
	return abs, nil
}

// lockMountpoint takes the mount point's lock and, if an earlier mount
// left anything behind (it was killed), cleans that up first.
func lockMountpoint(mp, fusermount string, stderr io.Writer) (*flock.Lock, error) {
	path := filepath.Join(mp, lockName)
	_, statErr := os.Lstat(path)
	lock, pid, err := flock.Take(path, false, 0)
	if errors.Is(err, flock.ErrHeld) {
		return nil, fmt.Errorf("%w: %s (pid %d; backy-nbd umount %s stops it)", ErrBusy, mp, pid, mp)
	}
	if err != nil {
		return nil, fmt.Errorf("nbdmount: %w", err)
	}
	if statErr == nil {
		if err := cleanStale(mp, fusermount, stderr); err != nil {
			lock.Unlock()
			return nil, err
		}
	}
	return lock, nil
}

// checkEmpty refuses a mount point with anything but the lock in it.
func checkEmpty(mp string) error {
	des, err := os.ReadDir(mp)
	if err != nil {
		return fmt.Errorf("nbdmount: %w", err)
	}
	var names []string
	for _, de := range des {
		if de.Name() != lockName {
			names = append(names, de.Name())
		}
	}
	if len(names) > 0 {
		if len(names) > 3 {
			names = append(names[:3], "...")
		}
		return fmt.Errorf("%w: %s is not empty (%s)", ErrMountpoint, mp, strings.Join(names, ", "))
	}
	return nil
}

// plan reads the revision's partition table, opens each partition (or
// the whole disk) and probes its file system through the verified cache.
// The entries returned hold open exports, also on error.
func plan(cat *nbdrepo.Catalog, rev *repo.Revision, log *slog.Logger) ([]*entry, error) {
	whole, err := cat.Open(rev.ID)
	if err != nil {
		return nil, err
	}
	t, err := partition.Read(whole, whole.Size())
	if errors.Is(err, partition.ErrNoTable) {
		e := &entry{name: "disk", export: rev.ID, x: whole}
		probe(e)
		return []*entry{e}, nil
	}
	whole.Close()
	if err != nil {
		return nil, fmt.Errorf("nbdmount: partition table of revision %s: %w", rev.ID, err)
	}
	for _, p := range t.Problems {
		log.Warn("partition table not followed", "revision", rev.ID, "scheme", t.Scheme, "problem", p.Error())
	}
	var out []*entry
	for i := range t.Partitions {
		p := &t.Partitions[i]
		e := &entry{name: fmt.Sprintf("p%d", p.Number), export: fmt.Sprintf("%s/p%d", rev.ID, p.Number), part: p}
		if e.x, err = cat.Open(e.export); err != nil {
			return out, err
		}
		probe(e)
		out = append(out, e)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("nbdmount: revision %s: its %s partition table has no partition inside the image", rev.ID, t.Scheme)
	}
	return out, nil
}

// probe detects the file system of one entry and notes why it will have
// no file tree.
func probe(e *entry) {
	k, err := fsdetect.Detect(e.x, e.x.Size())
	e.kind = k
	switch {
	case err != nil:
		e.note = "cannot read its superblock: " + err.Error()
	case k.IsExt():
	case k == fsdetect.XFS:
		e.note = "no FUSE driver for XFS here; as root: mount -o ro,norecovery,loop " + e.name + ".img DIR"
	case k == fsdetect.LVM2:
		e.note = "an LVM physical volume; as root: losetup -r -f --show " + e.name + ".img, then vgscan and vgchange -ay"
	case k == fsdetect.Unknown:
		e.note = "no file system recognised"
	default:
		e.note = "no FUSE driver for " + string(k) + " here"
	}
}

// describeEntry is the line the user gets per partition.
func describeEntry(mp string, e *entry) string {
	img := filepath.Join(mp, e.name+".img")
	if e.note == "" {
		return fmt.Sprintf("%s: %s, %s: files in %s/, image %s", e.name, e.what(), e.kind, filepath.Join(mp, e.name), img)
	}
	k := ""
	if e.kind != fsdetect.Unknown {
		k = string(e.kind) + ": "
	}
	return fmt.Sprintf("%s: %s, %s%s; image only: %s", e.name, e.what(), k, e.note, img)
}

// writeReadme leaves the layout where a user browsing finds it.
func writeReadme(mp string, rev *repo.Revision, entries []*entry) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s revision %s (%s), pid %d\n\n", readmeHead, rev.ID, rev.Time.Local().Format("2006-01-02 15:04:05 MST"), os.Getpid())
	b.WriteString("Everything here is read-only and verified chunk by chunk: a damaged chunk\n" +
		"reads as an I/O error, never as wrong bytes. Journals are not replayed.\n" +
		"NAME.img is the raw image of a partition, NAME/ its files when fuse2fs can\n" +
		"read them (ext2, ext3, ext4). Unmount with Ctrl-C where backy-nbd mount runs,\n" +
		"or: backy-nbd umount " + mp + "\n\n")
	for _, e := range entries {
		b.WriteString(describeEntry(mp, e) + "\n")
	}
	p := filepath.Join(mp, readmeName)
	tmp := filepath.Join(mp, "."+readmeName+".tmp")
	if err := os.WriteFile(tmp, []byte(b.String()), 0o444); err != nil {
		return fmt.Errorf("nbdmount: %w", err)
	}
	if err := os.Rename(tmp, p); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("nbdmount: %w", err)
	}
	return nil
}

// helperError is a helper that exited before it mounted.
type helperError struct {
	h   *helper
	err error
}

func (e *helperError) Error() string { return e.err.Error() }
func (e *helperError) Unwrap() error { return e.err }

// session is what Mount has mounted, to undo in reverse order.
type session struct {
	mp         string
	fusermount string
	stderr     io.Writer
	died       chan *helper
	images     *fuse.Server // the image directory, mounted first
	files      []*imageFile // its files
	helpers    []*helper    // fuse2fs, in mount order
}

// mountTree mounts the file tree of an ext entry with fuse2fs, read-only
// and without replaying its journal.
func (s *session) mountTree(ctx context.Context, e *entry, fuse2fs *fuse2fsProg) error {
	o := "ro,norecovery"
	if os.Geteuid() != 0 {
		o += ",fakeroot" // fuse2fs checks permissions itself: let the user read every file
	}
	if fuse2fs.passesErrors {
		// direct_io: a short read is no end of file (fuse2fs.go);
		// cache_size: 1.47.4's default block cache is 32 MiB, searched
		// block by block on every read (find_cached_block: 7 times the
		// CPU of 1.47.0 in a cp -a), for blocks the page cache of the
		// device holds anyway
		o += ",direct_io,cache_size=64k"
	}
	dir := filepath.Join(s.mp, e.name)
	dev := filepath.Join(s.mp, imagesName, "."+e.name+".fuse2fs")
	e.mu.Lock()
	e.prog = fuse2fs
	e.mu.Unlock()
	h, err := s.mount(ctx, e, "fuse2fs "+e.name, dir, fuse2fs.path, "-f", "-o", o, dev, dir)
	if err != nil {
		return err
	}
	e.mu.Lock()
	e.fuse2fs = h
	e.mu.Unlock()
	return nil
}

// remount replaces a fuse2fs that poison ended, with the same program.
func (s *session) remount(ctx context.Context, e *entry) error {
	dir := filepath.Join(s.mp, e.name)
	if ok, _ := isMounted(dir); ok {
		if err := fusermount(s.fusermount, dir, true); err != nil {
			return err
		}
	}
	if err := s.mountTree(ctx, e, e.prog); err != nil && ctx.Err() == nil {
		return err
	}
	return nil
}

// mount starts a helper and waits until its mount is there.
func (s *session) mount(ctx context.Context, e *entry, what, mnt, prog string, args ...string) (*helper, error) {
	h, err := startHelper(what, mnt, s.stderr, s.died, prog, args...)
	if err != nil {
		return nil, err
	}
	h.entry = e
	if err := h.waitMounted(ctx, mountTimeout); err != nil {
		select {
		case <-h.done:
			h.ended = true // its exit is this error, not news for later
			return nil, &helperError{h: h, err: err}
		default:
		}
		s.helpers = append(s.helpers, h) // still running: teardown ends it
		return nil, err
	}
	s.helpers = append(s.helpers, h)
	return h, nil
}

// teardown unmounts in reverse order and ends every helper: a plain
// unmount first, a lazy one if something still uses the mount (a shell
// sitting in it), so that nothing stays mounted.
func (s *session) teardown() {
	for i := len(s.helpers) - 1; i >= 0; i-- {
		h := s.helpers[i]
		h.ended = true
		if h.entry != nil {
			h.entry.mu.Lock()
			h.entry.fuse2fs = nil // no poison during teardown
			h.entry.mu.Unlock()
		}
		s.unmount(h.mnt)
		h.stop()
	}
	if s.images != nil {
		if err := s.images.Unmount(); err != nil {
			s.unmount(filepath.Join(s.mp, imagesName))
		}
		s.images.Wait()
	}
	for _, f := range s.files {
		f.store.close()
	}
}

// unmount unmounts mnt if it is mounted: plainly, or lazily when busy.
func (s *session) unmount(mnt string) {
	if ok, _ := isMounted(mnt); !ok {
		return
	}
	if err := fusermount(s.fusermount, mnt, false); err != nil {
		fmt.Fprintf(s.stderr, "%s is busy, detaching it lazily: %v\n", mnt, err)
		if err := fusermount(s.fusermount, mnt, true); err != nil {
			fmt.Fprintf(s.stderr, "cannot unmount %s: %v\n", mnt, err)
		}
	}
}

// removeEntries removes what Mount created in the mount point, now that
// nothing is mounted there.
func (s *session) removeEntries(entries []*entry) {
	os.Remove(filepath.Join(s.mp, readmeName))
	for _, e := range entries {
		os.Remove(filepath.Join(s.mp, e.name))
		os.Remove(filepath.Join(s.mp, e.name+".img"))
	}
	os.Remove(filepath.Join(s.mp, imagesName))
}
