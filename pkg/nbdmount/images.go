package nbdmount

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/backy/backy/pkg/nbdserver"
)

// The image directory is backy-nbd's own FUSE file system, served
// in-process from the verified chunk cache: per entry a read-only
// NAME.img for people, where a damaged chunk reads as EIO, and a hidden
// .NAME.fuse2fs, the device fuse2fs reads.
//
// What a read error of the device becomes depends on the fuse2fs
// (fuse2fs.go finds it and says which kind it is; the one choice is
// entry.poison):
//
// A fuse2fs that passes errors on (1.47.4-backy1, which scripts/deps.sh
// builds, patched; run with -o direct_io) gets the EIO: the reader of a
// file on the damaged chunk gets EIO, from the first block of its read
// that lies on it (the blocks before come back as a short read:
// direct_io, so the kernel takes it as no end of file), and fuse2fs goes
// on serving the other files (fuse2fs.go says what goes wrong unpatched
// and without direct_io). 1.47.4 opens
// its device read-write even with -o ro, and writes to it, unless that
// open fails with EACCES or EPERM: so the device refuses a write open
// with EACCES (NAME.img with EROFS).
//
// Any other fuse2fs must never see a read error. Debian 12's fuse2fs
// (e2fsprogs 1.47.0) passes an errno from its device through as a
// positive number: an EIO reaches the reader as "5 bytes read" of
// whatever was in the buffer; a short read it does turn into EIO, but
// then it writes an error note into the superblock through its read-only
// device, and every later large read fails with EBADF, passed on as "9
// bytes read". So a read of the fuse2fs device that meets a damaged chunk
// first kills that fuse2fs, and only then returns: the reader's request
// fails (ENOTCONN), nothing fuse2fs could make of the error ever leaves
// it, and the partition's tree is mounted again by a new fuse2fs.
//
// The fuse2fs view goes through the page cache like the other (with direct
// I/O every block fuse2fs reads was a round trip here, and a cp -a took
// twice as long). So a read-ahead of the kernel that reaches a damaged
// chunk fails too. A fuse2fs that passes errors on never sees that: the
// kernel reads the pages it was asked for again one by one, and only
// those on the damaged chunk fail. The kill cannot wait for that: a file
// that ends less than maxReadAhead before a damaged chunk fails like the
// file on it, with the old fuse2fs. Any error kills, whichever request it
// is (the kernel may retry a failed read-ahead as a single read; fuse2fs
// must see neither).
//
// The kernel's page cache of the image files is the mount's cache of
// decompressed data (a revision never changes: FOPEN_KEEP_CACHE, long
// timeouts). The kernel asks for at most maxReadAhead bytes at a time, but
// a chunk is loaded (read, decompressed, verified) whole: so once a read
// has loaded one, the whole chunk is handed to the page cache (FUSE's
// NOTIFY_STORE, from a goroutine: the pages of the read being answered
// are locked until its reply). The rest of the chunk then costs fuse2fs
// no round trip here, and backy-nbd need not keep the chunk: its own
// cache only carries the chunks being read (mountCacheChunks). Only
// verified bytes are stored; a damaged chunk is never stored, and every
// read of it still fails here.

// imageFile is one partition (or the whole disk) as a file.
type imageFile struct {
	fs.Inode
	x     nbdserver.Export
	dev   *entry // the entry whose fuse2fs reads this file; nil for NAME.img
	mtime time.Time
	uid   uint32
	gid   uint32
	log   *slog.Logger
	name  string
	store *pageStore // nil: no chunk is handed to the page cache
}

var (
	_ fs.NodeGetattrer = (*imageFile)(nil)
	_ fs.NodeOpener    = (*imageFile)(nil)
	_ fs.NodeReader    = (*imageFile)(nil)
)

func (f *imageFile) Getattr(ctx context.Context, fh fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	out.Mode = syscall.S_IFREG | 0o444
	out.Size = uint64(f.x.Size())
	out.Blocks = (out.Size + 511) / 512
	out.Nlink = 1
	out.Uid, out.Gid = f.uid, f.gid
	out.SetTimes(nil, &f.mtime, &f.mtime)
	return 0
}

func (f *imageFile) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	if flags&syscall.O_ACCMODE != syscall.O_RDONLY {
		if f.dev != nil {
			return nil, 0, syscall.EACCES // fuse2fs 1.47.4 then opens it read-only
		}
		return nil, 0, syscall.EROFS
	}
	return nil, fuse.FOPEN_KEEP_CACHE, 0 // a revision never changes
}

func (f *imageFile) Read(ctx context.Context, fh fs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	n, err := f.x.ReadAt(dest, off)
	if err != nil && !errors.Is(err, io.EOF) {
		f.log.Error("read failed", "file", f.name, "offset", off, "length", len(dest), "err", err.Error())
		if f.dev != nil {
			f.dev.poison(err)
		}
		return nil, syscall.EIO
	}
	if f.store != nil {
		f.store.after(&f.Inode, off, n)
	}
	return fuse.ReadResultData(dest[:n]), 0
}

// imageRoot is the image directory.
type imageRoot struct {
	fs.Inode
	files []*imageFile
}

var _ fs.NodeOnAdder = (*imageRoot)(nil)

func (r *imageRoot) OnAdd(ctx context.Context) {
	for _, f := range r.files {
		r.AddChild(f.name, r.NewPersistentInode(ctx, f, fs.StableAttr{Mode: syscall.S_IFREG}), false)
	}
}

// maxReadAhead is the kernel's read-ahead on the image files.
const maxReadAhead = 128 << 10

// mountImages mounts the image directory at dir.
func mountImages(dir string, files []*imageFile) (*fuse.Server, error) {
	long := time.Hour // nothing in it ever changes
	return fs.Mount(dir, &imageRoot{files: files}, &fs.Options{
		EntryTimeout: &long, AttrTimeout: &long,
		MountOptions: fuse.MountOptions{
			FsName: "backy-nbd", Name: "backy", DirectMount: true,
			MaxReadAhead: maxReadAhead, MaxBackground: 32,
		},
	})
}
