package nbdrepo

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/backy/backy/pkg/nbdserver"
	"github.com/backy/backy/pkg/partition"
	"github.com/backy/backy/pkg/upkeep"
)

// splitPartition splits an export name "SPEC/pN" into the revision spec
// and the partition number; ok is false for a name without the suffix.
func splitPartition(name string) (spec string, n int, ok bool) {
	i := strings.LastIndex(name, "/p")
	if i < 0 {
		return name, 0, false
	}
	n, err := strconv.Atoi(name[i+2:])
	if err != nil || n < 1 || name[i+2] == '+' || name[i+2] == '0' {
		return name, 0, false
	}
	return name[:i], n, true
}

// partitions reads the partition table of an opened revision through the
// verified chunk cache, without read-ahead, and logs what it refused to
// follow. An image without a table has no partitions.
func (c *Catalog) partitions(e *export) ([]partition.Partition, error) {
	t, err := partition.Read(tableReader{e}, e.Size())
	if errors.Is(err, partition.ErrNoTable) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	for _, p := range t.Problems {
		c.log.Warn("partition table not followed", "revision", e.rev.ID, "scheme", t.Scheme, "problem", p.Error())
	}
	return t.Partitions, nil
}

// openPartition opens partition n of the revision export e.
func (c *Catalog) openPartition(e *export, n int) (nbdserver.Export, error) {
	ps, err := c.partitions(e)
	if err != nil {
		return nil, err
	}
	for _, p := range ps {
		if p.Number == n {
			return &partExport{e: e, p: p, desc: describePartition(e.rev.ID, p)}, nil
		}
	}
	return nil, fmt.Errorf("%w: revision %s has no partition %d", nbdserver.ErrNotFound, e.rev.ID, n)
}

// describePartition is what nbdinfo --list shows beside SPEC/pN.
func describePartition(rev string, p partition.Partition) string {
	s := fmt.Sprintf("partition %d of %s, %s, %s at byte %d", p.Number, rev, p.Type, upkeep.HumanBytes(p.Size), p.Start)
	if p.Name != "" {
		s += fmt.Sprintf(", name %q", p.Name)
	}
	return s
}

// partExport is a read-only window onto one partition of a revision: its
// reads and map are the revision's, shifted by the partition's start.
type partExport struct {
	e    *export
	p    partition.Partition
	desc string
}

var (
	_ nbdserver.Export    = (*partExport)(nil)
	_ nbdserver.Describer = (*partExport)(nil)
	_ nbdserver.Mapper    = (*partExport)(nil)
	_ nbdserver.Canonical = (*partExport)(nil)
)

func (x *partExport) Size() int64         { return x.p.Size }
func (x *partExport) Description() string { return x.desc }

// CanonicalName is ID/pN, the name nbdinfo --list shows.
func (x *partExport) CanonicalName() string { return partName(x.e.rev.ID, x.p.Number) }

// partName names partition n of revision id.
func partName(id string, n int) string { return fmt.Sprintf("%s/p%d", id, n) }
func (x *partExport) Close() error     { return x.e.Close() }

func (x *partExport) ReadAt(p []byte, off int64) (int, error) {
	p, eof := window(p, off, x.p.Size)
	if eof != nil && len(p) == 0 {
		return 0, eof
	}
	n, err := x.e.ReadAt(p, x.p.Start+off)
	if err != nil && err != io.EOF {
		return n, err
	}
	return n, eof
}

// View is the export's View of the partition's bytes [off, off+n).
func (x *partExport) View(off int64, n int, fn func(p []byte)) error {
	if off < 0 || off+int64(n) > x.p.Size {
		return fmt.Errorf("%w: %d bytes at %d of a partition of %d", errView, n, off, x.p.Size)
	}
	return x.e.View(x.p.Start+off, n, fn)
}

func (x *partExport) Extent(off, max int64) (bool, int64) {
	return x.e.Extent(x.p.Start+off, min(max, x.p.Size-off))
}
