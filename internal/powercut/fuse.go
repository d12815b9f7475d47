package powercut

import (
	"context"
	"path/filepath"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// node is a file or directory of the mounted simulator. Its FUSE inode
// number is the simulator's own inode number, which the log uses too.
type node struct {
	fs.Inode
	sim *Sim
}

var (
	_ fs.NodeLookuper  = (*node)(nil)
	_ fs.NodeGetattrer = (*node)(nil)
	_ fs.NodeSetattrer = (*node)(nil)
	_ fs.NodeOpener    = (*node)(nil)
	_ fs.NodeCreater   = (*node)(nil)
	_ fs.NodeMkdirer   = (*node)(nil)
	_ fs.NodeUnlinker  = (*node)(nil)
	_ fs.NodeRmdirer   = (*node)(nil)
	_ fs.NodeRenamer   = (*node)(nil)
	_ fs.NodeReaddirer = (*node)(nil)
	_ fs.NodeFsyncer   = (*node)(nil)
	_ fs.NodeStatfser  = (*node)(nil)
)

func (n *node) ino() uint64 { return n.StableAttr().Ino }

func (n *node) newChild(ctx context.Context, id uint64, st *syscall.Stat_t) *fs.Inode {
	return n.NewInode(ctx, &node{sim: n.sim}, fs.StableAttr{Mode: st.Mode & syscall.S_IFMT, Ino: id})
}

func fillAttr(out *fuse.Attr, st *syscall.Stat_t, id uint64) {
	out.FromStat(st)
	out.Ino = id
}

func (n *node) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	s := n.sim
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dead {
		return nil, syscall.EIO
	}
	id, ok := s.live.child(n.ino(), name)
	if !ok {
		return nil, syscall.ENOENT
	}
	var st syscall.Stat_t
	if err := syscall.Lstat(s.backing(id), &st); err != nil {
		return nil, fs.ToErrno(err)
	}
	fillAttr(&out.Attr, &st, id)
	return n.newChild(ctx, id, &st), 0
}

func (n *node) Getattr(ctx context.Context, f fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	s := n.sim
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dead {
		return syscall.EIO
	}
	var st syscall.Stat_t
	var err error
	if h, ok := f.(*handle); ok {
		err = syscall.Fstat(h.fd, &st)
	} else {
		err = syscall.Lstat(s.backing(n.ino()), &st)
	}
	if err != nil {
		return fs.ToErrno(err)
	}
	fillAttr(&out.Attr, &st, n.ino())
	return 0
}

// Setattr records a size change; modes are passed through (the crash
// state keeps the mode a file was created with), owners and times ignored.
func (n *node) Setattr(ctx context.Context, f fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	s := n.sim
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dead {
		return syscall.EIO
	}
	p := s.backing(n.ino())
	if size, ok := in.GetSize(); ok {
		op := Op{Kind: Truncate, Ino: n.ino(), Size: int64(size)}
		if errno := s.admit(&op); errno != 0 {
			return errno
		}
		var err error
		if h, ok := f.(*handle); ok {
			err = syscall.Ftruncate(h.fd, int64(size))
		} else {
			err = syscall.Truncate(p, int64(size))
		}
		if err != nil {
			return fs.ToErrno(err)
		}
		s.record(op)
	}
	if mode, ok := in.GetMode(); ok {
		if err := syscall.Chmod(p, mode); err != nil {
			return fs.ToErrno(err)
		}
	}
	var st syscall.Stat_t
	if err := syscall.Lstat(p, &st); err != nil {
		return fs.ToErrno(err)
	}
	fillAttr(&out.Attr, &st, n.ino())
	return 0
}

func (n *node) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	s := n.sim
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dead {
		return nil, 0, syscall.EIO
	}
	trunc := flags&syscall.O_TRUNC != 0 && flags&syscall.O_ACCMODE != syscall.O_RDONLY
	op := Op{Kind: Truncate, Ino: n.ino()}
	if trunc {
		if errno := s.admit(&op); errno != 0 {
			return nil, 0, errno
		}
	}
	fd, err := syscall.Open(s.backing(n.ino()), int(flags&^(syscall.O_APPEND|fuse.FMODE_EXEC))|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, 0, fs.ToErrno(err)
	}
	if trunc {
		s.record(op)
	}
	return &handle{sim: s, fd: fd, ino: n.ino()}, 0, 0
}

func (n *node) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	s := n.sim
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dead {
		return nil, nil, 0, syscall.EIO
	}
	if _, ok := s.live.child(n.ino(), name); ok {
		// The kernel's lookup was stale; the entry exists.
		return nil, nil, 0, syscall.EEXIST
	}
	op := Op{Kind: Create, Parent: n.ino(), Name: name, Ino: s.nextIno, Mode: mode & 0o7777}
	if errno := s.admit(&op); errno != 0 {
		return nil, nil, 0, errno
	}
	p := filepath.Join(s.backing(n.ino()), name)
	fd, err := syscall.Open(p, int(flags&^syscall.O_APPEND)|syscall.O_CREAT|syscall.O_CLOEXEC, mode)
	if err != nil {
		return nil, nil, 0, fs.ToErrno(err)
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		syscall.Close(fd)
		return nil, nil, 0, fs.ToErrno(err)
	}
	s.nextIno++
	s.record(op)
	fillAttr(&out.Attr, &st, op.Ino)
	return n.newChild(ctx, op.Ino, &st), &handle{sim: s, fd: fd, ino: op.Ino}, 0, 0
}

func (n *node) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	s := n.sim
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dead {
		return nil, syscall.EIO
	}
	op := Op{Kind: Mkdir, Parent: n.ino(), Name: name, Ino: s.nextIno, Mode: mode & 0o7777}
	if errno := s.admit(&op); errno != 0 {
		return nil, errno
	}
	p := filepath.Join(s.backing(n.ino()), name)
	if err := syscall.Mkdir(p, mode); err != nil {
		return nil, fs.ToErrno(err)
	}
	var st syscall.Stat_t
	if err := syscall.Lstat(p, &st); err != nil {
		return nil, fs.ToErrno(err)
	}
	s.nextIno++
	s.record(op)
	fillAttr(&out.Attr, &st, op.Ino)
	return n.newChild(ctx, op.Ino, &st), 0
}

func (n *node) remove(name string, kind Kind) syscall.Errno {
	s := n.sim
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dead {
		return syscall.EIO
	}
	id, ok := s.live.child(n.ino(), name)
	if !ok {
		return syscall.ENOENT
	}
	op := Op{Kind: kind, Parent: n.ino(), Name: name, Ino: id}
	if errno := s.admit(&op); errno != 0 {
		return errno
	}
	p := filepath.Join(s.backing(n.ino()), name)
	var err error
	if kind == Rmdir {
		err = syscall.Rmdir(p)
	} else {
		err = syscall.Unlink(p)
	}
	if err != nil {
		return fs.ToErrno(err)
	}
	s.record(op)
	return 0
}

func (n *node) Unlink(ctx context.Context, name string) syscall.Errno { return n.remove(name, Unlink) }
func (n *node) Rmdir(ctx context.Context, name string) syscall.Errno  { return n.remove(name, Rmdir) }

func (n *node) Rename(ctx context.Context, name string, newParent fs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	if flags != 0 {
		return syscall.ENOTSUP // RENAME_NOREPLACE, RENAME_EXCHANGE: not modelled
	}
	s := n.sim
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dead {
		return syscall.EIO
	}
	np, ok := newParent.(*node)
	if !ok {
		return syscall.EXDEV
	}
	id, ok := s.live.child(n.ino(), name)
	if !ok {
		return syscall.ENOENT
	}
	op := Op{Kind: Rename, Parent: n.ino(), Name: name, Ino: id, NewParent: np.ino(), NewName: newName}
	if errno := s.admit(&op); errno != 0 {
		return errno
	}
	err := syscall.Rename(filepath.Join(s.backing(n.ino()), name), filepath.Join(s.backing(np.ino()), newName))
	if err != nil {
		return fs.ToErrno(err)
	}
	s.record(op)
	return 0
}

func (n *node) Readdir(ctx context.Context) (fs.DirStream, syscall.Errno) {
	s := n.sim
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dead {
		return nil, syscall.EIO
	}
	return fs.NewLoopbackDirStream(s.backing(n.ino()))
}

// Fsync answers FSYNC and FSYNCDIR (the bridge sends both here, since the
// directory streams of Readdir have no Fsyncdir of their own). It records
// the sync; the backing directory is scratch, so nothing is synced there.
func (n *node) Fsync(ctx context.Context, f fs.FileHandle, flags uint32) syscall.Errno {
	s := n.sim
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dead {
		return syscall.EIO
	}
	kind := Fsync
	if n.IsDir() {
		kind = FsyncDir
	}
	op := Op{Kind: kind, Ino: n.ino()}
	if errno := s.admit(&op); errno != 0 {
		return errno
	}
	s.record(op)
	return 0
}

func (n *node) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	var st syscall.Statfs_t
	if err := syscall.Statfs(n.sim.root, &st); err != nil {
		return fs.ToErrno(err)
	}
	out.FromStatfsT(&st)
	return 0
}

// handle is an open file.
type handle struct {
	sim *Sim
	fd  int
	ino uint64
}

var (
	_ fs.FileReader    = (*handle)(nil)
	_ fs.FileWriter    = (*handle)(nil)
	_ fs.FileReleaser  = (*handle)(nil)
	_ fs.FileFlusher   = (*handle)(nil)
	_ fs.FileGetattrer = (*handle)(nil)
)

func (h *handle) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	if h.sim.isDead() {
		return nil, syscall.EIO
	}
	n, err := syscall.Pread(h.fd, dest, off)
	if err != nil {
		return nil, fs.ToErrno(err)
	}
	return fuse.ReadResultData(dest[:n]), 0
}

func (h *handle) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	s := h.sim
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dead {
		return 0, syscall.EIO
	}
	op := Op{Kind: Write, Ino: h.ino, Off: off}
	if errno := s.admit(&op); errno != 0 {
		return 0, errno
	}
	n, err := syscall.Pwrite(h.fd, data, off)
	if err != nil {
		return 0, fs.ToErrno(err)
	}
	op.Data = append([]byte(nil), data[:n]...)
	s.record(op)
	return uint32(n), 0
}

func (h *handle) Getattr(ctx context.Context, out *fuse.AttrOut) syscall.Errno {
	if h.sim.isDead() {
		return syscall.EIO
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(h.fd, &st); err != nil {
		return fs.ToErrno(err)
	}
	fillAttr(&out.Attr, &st, h.ino)
	return 0
}

func (h *handle) Flush(ctx context.Context) syscall.Errno {
	if h.sim.isDead() {
		return syscall.EIO
	}
	return 0
}

func (h *handle) Release(ctx context.Context) syscall.Errno {
	syscall.Close(h.fd)
	return 0
}
