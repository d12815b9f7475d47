package powercut

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
)

// Log is a recorded run: the state the backing directory had when the
// simulator was mounted (durable by definition) and every operation since.
type Log struct {
	start *tree
	Ops   []Op
}

// Variant says what happens to the changes that were not made durable
// before the cut: the model allows each of them to be lost or kept, and
// unsynced data to be lost, kept or replaced by zeros or garbage (the
// file's size having reached the disk before its blocks did).
type Variant int

const (
	// Strict keeps only what was made durable: every unsynced directory
	// change is undone, every unsynced write lost.
	Strict Variant = iota
	// MetaZero keeps every directory change and every new size, but the
	// bytes of unsynced writes read as zeros.
	MetaZero
	// MetaGarbage is MetaZero with garbage instead of zeros.
	MetaGarbage
	// Random keeps each unsynced directory change with probability 1/2 and
	// treats each unsynced write as lost, kept, zeros or garbage.
	Random
	// Everything keeps every change: what a killed process leaves.
	Everything
	// NewestOnly keeps only the newest unsynced directory change and no
	// unsynced data: the opposite of a journal's order, which finds code
	// that relies on one change reaching the disk before another without
	// a sync between them.
	NewestOnly
)

// Variants lists every variant.
var Variants = []Variant{Strict, MetaZero, MetaGarbage, Random, Everything, NewestOnly}

func (v Variant) String() string {
	if v == Chosen {
		return "chosen"
	}
	return [...]string{"strict", "meta-ahead-zeros", "meta-ahead-garbage", "random", "everything", "newest-only"}[v]
}

// State is one post-crash state the model allows.
type State struct {
	Cut     int // operations that happened before the power went
	Variant Variant
	// Unsynced directory changes that survived the cut, and those undone.
	MetaKept, MetaUndone int
	// Unsynced writes and truncations: kept, lost, turned to zeros, to garbage.
	DataKept, DataLost, DataZeros, DataGarbage int
	// Undone names a few of the unsynced changes the cut undid or
	// spoiled, renames first, then removals, creations and data.
	Undone []string
	last   string
	t      *tree
	notes  [4][]string // by rank: data, create/mkdir, unlink/rmdir, rename
}

// Materialize writes the post-crash files and directories into dir (which
// may exist, empty).
func (s *State) Materialize(dir string) error { return s.t.materialize(dir) }

// Path returns the post-crash bytes of the file at rel, and whether it
// exists.
func (s *State) File(rel string) ([]byte, bool) {
	id, ok := s.t.lookup(rel)
	if !ok || s.t.nodes[id].dir {
		return nil, false
	}
	return s.t.nodes[id].data, true
}

// Exists reports whether rel (file or directory) survived the cut.
func (s *State) Exists(rel string) bool {
	_, ok := s.t.lookup(rel)
	return ok
}

// Digest is a SHA-256 over the names, modes and contents of everything
// under rel in the state ("" for all): equal digests, equal trees. A test
// can skip a check it already made on an identical state.
func (s *State) Digest(rel string) string {
	id, ok := s.t.lookup(rel)
	if !ok {
		return "missing"
	}
	h := sha256.New()
	var walk func(id uint64, p string)
	walk = func(id uint64, p string) {
		n := s.t.nodes[id]
		fmt.Fprintf(h, "%q %v %o %d\n", p, n.dir, n.mode, len(n.data))
		h.Write(n.data)
		names := make([]string, 0, len(n.entries))
		for name := range n.entries {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			walk(n.entries[name], p+"/"+name)
		}
	}
	walk(id, "")
	return hex.EncodeToString(h.Sum(nil))
}

func (s *State) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "cut after op %d", s.Cut)
	if s.last != "" {
		fmt.Fprintf(&b, " (%s)", s.last)
	}
	fmt.Fprintf(&b, ", state %s: unsynced directory changes %d kept, %d undone; unsynced writes %d kept, %d lost, %d zeros, %d garbage",
		s.Variant, s.MetaKept, s.MetaUndone, s.DataKept, s.DataLost, s.DataZeros, s.DataGarbage)
	if len(s.Undone) > 0 {
		fmt.Fprintf(&b, "; e.g. %s", strings.Join(s.Undone, "; "))
	}
	return b.String()
}

const maxUndoneNamed = 4

// note keeps the last few things the cut undid, renames first (the worst
// for code that publishes by rename), then removals, creations, data.
func (s *State) note(op Op, what string) {
	rank := 0
	switch op.Kind {
	case Rename:
		rank = 3
	case Unlink, Rmdir:
		rank = 2
	case Create, Mkdir:
		rank = 1
	}
	// The last ones before the cut are the telling ones.
	s.notes[rank] = append(s.notes[rank], op.String()+" "+what)
	if len(s.notes[rank]) > maxUndoneNamed {
		s.notes[rank] = s.notes[rank][1:]
	}
}

func (s *State) pickNotes() {
	for rank := len(s.notes) - 1; rank >= 0; rank-- {
		for _, n := range s.notes[rank] {
			if len(s.Undone) < maxUndoneNamed {
				s.Undone = append(s.Undone, n)
			}
		}
	}
}

// Crash builds the state a power cut after the first n operations leaves
// in variant v; rng drives the Random variant and the garbage.
func (l *Log) Crash(n int, v Variant, rng *rand.Rand) *State {
	return l.crash(n, v, rng, nil)
}

// Chosen is the variant of CrashKeeping.
const Chosen Variant = -1

// CrashKeeping builds the state a power cut after the first n operations
// leaves when, of the unsynced directory changes (Unsynced), those keep
// returns true for reached the disk; unsynced data is lost. With every
// subset of Unsynced(n) a test walks all the directory states of a cut.
func (l *Log) CrashKeeping(n int, keep func(i int) bool) *State {
	return l.crash(n, Chosen, nil, keep)
}

// Unsynced lists the indexes of the directory changes before a cut after
// n operations that no fsync made durable.
func (l *Log) Unsynced(n int) []int {
	n = min(n, len(l.Ops))
	durable := durability(l.Ops[:n])
	var out []int
	for i, op := range l.Ops[:n] {
		if dir, ok := entryDir(op); ok && !durable(dir, i) {
			out = append(out, i)
		}
	}
	return out
}

// durability tells, for a cut after ops, whether what operation i did to
// inode ino (data for a file, entries for a directory) was made durable
// by a later fsync of ino.
func durability(ops []Op) func(ino uint64, i int) bool {
	lastSync := map[uint64]int{}
	for i, op := range ops {
		if op.Kind == Fsync || op.Kind == FsyncDir {
			lastSync[op.Ino] = i
		}
	}
	return func(ino uint64, i int) bool {
		j, ok := lastSync[ino]
		return ok && j > i
	}
}

// entryDir is the directory whose fsync makes a directory change durable.
func entryDir(op Op) (uint64, bool) {
	switch op.Kind {
	case Create, Mkdir, Unlink, Rmdir:
		return op.Parent, true
	case Rename:
		return op.NewParent, true
	}
	return 0, false
}

func (l *Log) crash(n int, v Variant, rng *rand.Rand, chosen func(int) bool) *State {
	if n > len(l.Ops) {
		n = len(l.Ops)
	}
	ops := l.Ops[:n]
	durable := durability(ops)
	newest := -1 // the newest unsynced directory change
	for i, op := range ops {
		if dir, ok := entryDir(op); ok && !durable(dir, i) {
			newest = i
		}
	}
	s := &State{Cut: n, Variant: v, t: l.start.clone()}
	if n > 0 {
		s.last = ops[n-1].String()
	}
	keepMeta := func(op Op, i int, dir uint64) bool {
		if durable(dir, i) {
			return true
		}
		var keep bool
		switch v {
		case MetaZero, MetaGarbage, Everything:
			keep = true
		case Random:
			keep = rng.IntN(2) == 0
		case NewestOnly:
			keep = i == newest
		case Chosen:
			keep = chosen(i)
		}
		if keep {
			s.MetaKept++
		} else {
			s.MetaUndone++
			s.note(op, "undone")
		}
		return keep
	}
	t := s.t
	for i, op := range ops {
		switch op.Kind {
		case Create, Mkdir:
			if t.nodes[op.Ino] == nil {
				n := &inode{dir: op.Kind == Mkdir, mode: op.Mode}
				if n.dir {
					n.entries = map[string]uint64{}
				}
				t.nodes[op.Ino] = n
			}
			if keepMeta(op, i, op.Parent) {
				t.link(op.Parent, op.Name, op.Ino)
			}
		case Unlink, Rmdir:
			if keepMeta(op, i, op.Parent) {
				t.unlink(op.Parent, op.Name, op.Ino)
			}
		case Rename:
			if keepMeta(op, i, op.NewParent) {
				t.link(op.NewParent, op.NewName, op.Ino)
			}
		case Write, Truncate:
			s.data(t.nodes[op.Ino], op, durable(op.Ino, i), rng)
		}
	}
	s.pickNotes()
	return s
}

// data applies a write or truncation to a file as the variant says.
func (s *State) data(n *inode, op Op, durable bool, rng *rand.Rand) {
	how := "keep"
	if !durable {
		switch s.Variant {
		case Strict, NewestOnly, Chosen:
			how = "lose"
		case MetaZero:
			how = "zeros"
		case MetaGarbage:
			how = "garbage"
		case Random:
			how = [...]string{"keep", "lose", "zeros", "garbage"}[rng.IntN(4)]
		}
		switch how {
		case "keep":
			s.DataKept++
		case "lose":
			s.DataLost++
			s.note(op, "lost")
		case "zeros":
			s.DataZeros++
			s.note(op, "reads zeros")
		case "garbage":
			s.DataGarbage++
			s.note(op, "reads garbage")
		}
	}
	if op.Kind == Truncate {
		if how != "lose" {
			n.truncate(op.Size)
		}
		return
	}
	switch how {
	case "keep":
		n.write(op.Off, op.Data)
	case "zeros":
		n.write(op.Off, make([]byte, len(op.Data)))
	case "garbage":
		g := make([]byte, len(op.Data))
		for i := range g {
			g[i] = byte(rng.Uint32())
		}
		n.write(op.Off, g)
	}
}
