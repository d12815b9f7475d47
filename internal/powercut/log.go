package powercut

import (
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// Kind is the kind of a recorded operation.
type Kind uint8

// The recorded operations. Reads, stats and attribute changes other than
// the size are passed through without a record: they change nothing a
// power cut could lose.
const (
	Create Kind = iota + 1
	Mkdir
	Write
	Truncate
	Rename
	Unlink
	Rmdir
	Fsync
	FsyncDir
)

var kindNames = [...]string{"", "create", "mkdir", "write", "truncate", "rename", "unlink", "rmdir", "fsync", "fsyncdir"}

func (k Kind) String() string { return kindNames[k] }

// Op is one recorded operation. Files and directories are named by inode
// (numbers the simulator gives out and never reuses), so that the log
// stays exact across renames; Path and NewPath are for people.
type Op struct {
	Kind      Kind
	Ino       uint64 // the file or directory created, written, moved, removed or synced
	Parent    uint64 // the directory of the entry (create, mkdir, unlink, rmdir, rename's source)
	Name      string
	NewParent uint64 // rename: the directory moved into
	NewName   string
	Off       int64  // write: offset
	Data      []byte // write: the bytes
	Size      int64  // truncate: the new size
	Mode      uint32 // create, mkdir: permission bits
	Path      string
	NewPath   string
}

func (o Op) String() string {
	switch o.Kind {
	case Write:
		return fmt.Sprintf("write %s [%d,+%d)", o.Path, o.Off, len(o.Data))
	case Truncate:
		return fmt.Sprintf("truncate %s to %d", o.Path, o.Size)
	case Rename:
		return fmt.Sprintf("rename %s -> %s", o.Path, o.NewPath)
	}
	return o.Kind.String() + " " + o.Path
}

// IsMeta reports whether the operation changes a directory.
func (o Op) IsMeta() bool {
	switch o.Kind {
	case Create, Mkdir, Rename, Unlink, Rmdir:
		return true
	}
	return false
}

// inode is a file or directory of a modelled tree.
type inode struct {
	dir     bool
	mode    uint32
	entries map[string]uint64 // directories
	data    []byte            // files
	parent  uint64            // where it is linked, 0 when nowhere
	name    string
}

// tree is a modelled file system: the live one the recorder keeps in step
// with the backing directory, or a crash state being built.
type tree struct {
	nodes map[uint64]*inode
}

const rootIno = 1

func newTree() *tree {
	t := &tree{nodes: map[uint64]*inode{}}
	t.nodes[rootIno] = &inode{dir: true, mode: 0o755, entries: map[string]uint64{}}
	return t
}

func (t *tree) clone() *tree {
	c := &tree{nodes: make(map[uint64]*inode, len(t.nodes))}
	for id, n := range t.nodes {
		m := *n
		if n.dir {
			m.entries = make(map[string]uint64, len(n.entries))
			for k, v := range n.entries {
				m.entries[k] = v
			}
		} else {
			m.data = append([]byte(nil), n.data...)
		}
		c.nodes[id] = &m
	}
	return c
}

// lookup resolves a slash-separated path relative to the root.
func (t *tree) lookup(rel string) (uint64, bool) {
	id := uint64(rootIno)
	rel = path.Clean("/" + rel)
	if rel == "/" {
		return id, true
	}
	for _, part := range strings.Split(rel[1:], "/") {
		n := t.nodes[id]
		if n == nil || !n.dir {
			return 0, false
		}
		c, ok := n.entries[part]
		if !ok {
			return 0, false
		}
		id = c
	}
	return id, true
}

// path names an inode by the names leading to it ("" for the root).
func (t *tree) path(id uint64) string {
	var parts []string
	for id != rootIno {
		n := t.nodes[id]
		if n == nil || n.parent == 0 {
			return "(unlinked)/" + strings.Join(parts, "/")
		}
		parts = append([]string{n.name}, parts...)
		id = n.parent
	}
	return strings.Join(parts, "/")
}

func (t *tree) child(dir uint64, name string) (uint64, bool) {
	d := t.nodes[dir]
	if d == nil || !d.dir {
		return 0, false
	}
	c, ok := d.entries[name]
	return c, ok
}

// detach removes id from the directory it is linked in.
func (t *tree) detach(id uint64) {
	n := t.nodes[id]
	if n == nil || n.parent == 0 {
		return
	}
	if p := t.nodes[n.parent]; p != nil && p.entries[n.name] == id {
		delete(p.entries, n.name)
	}
	n.parent, n.name = 0, ""
}

// link names id dir/name, moving it from where it was and unlinking
// whatever had that name before.
func (t *tree) link(dir uint64, name string, id uint64) {
	d := t.nodes[dir]
	if d == nil || !d.dir {
		return
	}
	if old, ok := d.entries[name]; ok && old != id {
		t.detach(old)
	}
	t.detach(id)
	d.entries[name] = id
	n := t.nodes[id]
	n.parent, n.name = dir, name
}

// unlink removes dir/name if it still names id.
func (t *tree) unlink(dir uint64, name string, id uint64) {
	if c, ok := t.child(dir, name); ok && c == id {
		t.detach(id)
	}
}

func (n *inode) write(off int64, p []byte) {
	if end := off + int64(len(p)); end > int64(len(n.data)) {
		n.data = append(n.data, make([]byte, end-int64(len(n.data)))...)
	}
	copy(n.data[off:], p)
}

func (n *inode) truncate(size int64) {
	if size <= int64(len(n.data)) {
		n.data = n.data[:size]
		return
	}
	n.data = append(n.data, make([]byte, size-int64(len(n.data)))...)
}

// scan builds the tree of an existing directory: the state before the
// first recorded operation, taken as durable.
func scan(dir string) (*tree, uint64, error) {
	t := newTree()
	next := uint64(rootIno + 1)
	ids := map[string]uint64{".": rootIno}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		n := &inode{mode: uint32(info.Mode().Perm())}
		switch {
		case d.IsDir():
			n.dir = true
			n.entries = map[string]uint64{}
		case d.Type().IsRegular():
			if n.data, err = os.ReadFile(p); err != nil {
				return err
			}
		default:
			return fmt.Errorf("powercut: %s is neither file nor directory", p)
		}
		id := next
		next++
		t.nodes[id] = n
		ids[rel] = id
		t.link(ids[filepath.Dir(rel)], d.Name(), id)
		return nil
	})
	return t, next, err
}

// materialize writes the tree's reachable files and directories under dir.
func (t *tree) materialize(dir string) error {
	var walk func(id uint64, p string) error
	walk = func(id uint64, p string) error {
		n := t.nodes[id]
		names := make([]string, 0, len(n.entries))
		for name := range n.entries {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			c := t.nodes[n.entries[name]]
			cp := filepath.Join(p, name)
			if c.dir {
				if err := os.Mkdir(cp, 0o755); err != nil {
					return err
				}
				if err := walk(n.entries[name], cp); err != nil {
					return err
				}
				if err := os.Chmod(cp, fs.FileMode(c.mode)); err != nil {
					return err
				}
				continue
			}
			if err := os.WriteFile(cp, c.data, 0o600); err != nil {
				return err
			}
			if err := os.Chmod(cp, fs.FileMode(c.mode)); err != nil {
				return err
			}
		}
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return walk(rootIno, dir)
}
