package nbdrepo

import (
	"bytes"
	"encoding/binary"
	"slices"
	"testing"

	"github.com/backy/backy/pkg/nbdserver"
	"github.com/backy/backy/pkg/repo"
)

func TestSplitPartition(t *testing.T) {
	for _, tc := range []struct {
		name, spec string
		n          int
		ok         bool
	}{
		{"latest/p1", "latest", 1, true},
		{"abc/p12", "abc", 12, true},
		{"/p2", "", 2, true},
		{"latest", "latest", 0, false},
		{"latest/p", "latest/p", 0, false},
		{"latest/p0", "latest/p0", 0, false},
		{"latest/p01", "latest/p01", 0, false},
		{"latest/p+1", "latest/p+1", 0, false},
		{"latest/p-1", "latest/p-1", 0, false},
		{"latest/px", "latest/px", 0, false},
	} {
		spec, n, ok := splitPartition(tc.name)
		if spec != tc.spec || n != tc.n || ok != tc.ok {
			t.Errorf("%q: %q %d %v, want %q %d %v", tc.name, spec, n, ok, tc.spec, tc.n, tc.ok)
		}
	}
}

// TestTableReadsLoadNothingAhead: listing the exports and opening SPEC/pN
// read partition tables, which must not start read-ahead (a list loaded 4
// chunks ahead for every revision, pushing what clients read out of the
// cache); a client's sequential read of the partition still does.
func TestTableReadsLoadNothingAhead(t *testing.T) {
	dir := t.TempDir()
	data := image(8*repo.ChunkSize, 9)
	mbr := data[446:512]
	clear(mbr)
	mbr[4] = 0x83                                       // Linux
	binary.LittleEndian.PutUint32(mbr[8:], 2048)        // at 1 MiB
	binary.LittleEndian.PutUint32(mbr[12:], 12<<20/512) // 12 MiB
	data[510], data[511] = 0x55, 0xaa
	r1 := backup(t, dir, data)
	r2 := backup(t, dir, data[:7*repo.ChunkSize])
	c := openCatalog(t, dir, Options{})

	list, err := c.List()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range list {
		names = append(names, e.Name)
	}
	if want := []string{r1.ID, r1.ID + "/p1", r2.ID, r2.ID + "/p1"}; !slices.Equal(names, want) {
		t.Fatalf("List: %q, want %q", names, want)
	}
	if st, held := c.Stats(); st.ReadAhead != 0 || held > 1 {
		t.Errorf("after a list: %+v, %d chunks held; want no read-ahead", st, held)
	}
	e, err := c.Open("latest/p1")
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if name := e.(nbdserver.Canonical).CanonicalName(); name != r2.ID+"/p1" {
		t.Errorf("latest/p1 is %q, want %s/p1", name, r2.ID)
	}
	if st, _ := c.Stats(); st.ReadAhead != 0 {
		t.Errorf("after opening latest/p1: %+v; want no read-ahead", st)
	}
	p := make([]byte, 1<<20)
	for off := int64(0); off < 8<<20; off += int64(len(p)) {
		if _, err := e.ReadAt(p, off); err != nil || !bytes.Equal(p, data[1<<20+off:][:len(p)]) {
			t.Fatalf("ReadAt(%d): %v", off, err)
		}
	}
	if st, _ := c.Stats(); st.ReadAhead == 0 {
		t.Errorf("a sequential read of latest/p1 started no read-ahead: %+v", st)
	}
}
