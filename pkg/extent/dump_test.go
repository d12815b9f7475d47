package extent_test

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/backy/backy/pkg/extent"
)

const dumpTinyText = `header kind=full size=8 source="file:/srv/vm/tiny.img" snapshot="" base=""
data offset=0 length=1 crc=57116c02
zero offset=1 length=1
data offset=2 length=1 crc=9b473deb
zero offset=3 length=1
data offset=7 length=1 crc=5cf75be0
end records=5 data=3 zero=2
`

const dumpTinyJSON = `{"type":"header","kind":"full","size":8,"source":"file:/srv/vm/tiny.img","snapshot":"","base":""}
{"type":"data","offset":0,"length":1,"crc":"57116c02"}
{"type":"zero","offset":1,"length":1}
{"type":"data","offset":2,"length":1,"crc":"9b473deb"}
{"type":"zero","offset":3,"length":1}
{"type":"data","offset":7,"length":1,"crc":"5cf75be0"}
{"type":"end","records":5,"data":3,"zero":2}
`

func TestDumpVector(t *testing.T) {
	stream := readVector(t, "valid-tiny-records.bxs")
	for _, c := range []struct {
		asJSON bool
		want   string
	}{{false, dumpTinyText}, {true, dumpTinyJSON}} {
		var out bytes.Buffer
		if err := extent.Dump(&out, bytes.NewReader(stream), c.asJSON); err != nil {
			t.Fatal(err)
		}
		if out.String() != c.want {
			t.Errorf("json=%v:\n%s\nwant:\n%s", c.asJSON, out.String(), c.want)
		}
	}
}

// TestDumpCRCIsStored checks that the crc Dump prints is the checksum
// stored in the stream, by finding each data record's bytes in it.
func TestDumpCRCIsStored(t *testing.T) {
	stream := readVector(t, "valid-full.bxs")
	var out bytes.Buffer
	if err := extent.Dump(&out, bytes.NewReader(stream), false); err != nil {
		t.Fatal(err)
	}
	r, err := extent.NewReader(bytes.NewReader(stream))
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for {
		rec, err := r.Next()
		if err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if rec.Type == extent.Data {
			start := int(r.BytesRead() - rec.Length - 24)
			want = append(want, fmt.Sprintf("crc=%08x", binary.BigEndian.Uint32(stream[start+20:])))
		}
	}
	var got []string
	for line := range strings.Lines(out.String()) {
		if strings.HasPrefix(line, "data ") {
			got = append(got, line[strings.LastIndex(line, " ")+1:len(line)-1])
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("printed %v, stream holds %v", got, want)
	}
}

// TestDumpJSONLines checks every JSON line parses and carries the fields
// of its text line.
func TestDumpJSONLines(t *testing.T) {
	stream := readVector(t, "valid-differential.bxs")
	var text, js bytes.Buffer
	if err := extent.Dump(&text, bytes.NewReader(stream), false); err != nil {
		t.Fatal(err)
	}
	if err := extent.Dump(&js, bytes.NewReader(stream), true); err != nil {
		t.Fatal(err)
	}
	textLines := strings.Split(strings.TrimSuffix(text.String(), "\n"), "\n")
	sc := bufio.NewScanner(&js)
	i := 0
	for ; sc.Scan(); i++ {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %d: %v", i, err)
		}
		if i >= len(textLines) || !strings.HasPrefix(textLines[i], m["type"].(string)+" ") {
			t.Fatalf("line %d: JSON %s, text %q", i, sc.Text(), textLines[i])
		}
		for k, v := range m {
			if k == "type" {
				continue
			}
			s := fmt.Sprint(v)
			if _, isString := v.(string); isString && k != "crc" && k != "kind" {
				s = fmt.Sprintf("%q", v)
			} else if f, isNum := v.(float64); isNum {
				s = fmt.Sprintf("%d", int64(f))
			}
			if !strings.Contains(textLines[i]+" ", " "+k+"="+s+" ") {
				t.Errorf("line %d: %s=%s not in %q", i, k, s, textLines[i])
			}
		}
	}
	if i != len(textLines) || i != 5 {
		t.Errorf("%d JSON lines, %d text lines, want 5", i, len(textLines))
	}
}

// TestDumpBroken checks that Dump prints what it could read and then
// returns the Reader's error, with no end line.
func TestDumpBroken(t *testing.T) {
	for _, c := range []struct {
		file  string
		want  error
		lines int
	}{
		{"invalid-bad-record-checksum.bxs", extent.ErrChecksum, 3},
		{"invalid-missing-end.bxs", io.ErrUnexpectedEOF, 3},
		{"invalid-bad-magic.bxs", extent.ErrBadMagic, 0},
	} {
		for _, asJSON := range []bool{false, true} {
			var out bytes.Buffer
			err := extent.Dump(&out, bytes.NewReader(readVector(t, c.file)), asJSON)
			if !errors.Is(err, c.want) {
				t.Errorf("%s: got %v, want %v", c.file, err, c.want)
			}
			if n := strings.Count(out.String(), "\n"); n != c.lines || strings.Contains(out.String(), "end") {
				t.Errorf("%s json=%v: printed\n%s", c.file, asJSON, out.String())
			}
		}
	}
}

// TestDumpHostileNames checks that names cannot forge lines or smuggle
// terminal escapes into the output.
func TestDumpHostileNames(t *testing.T) {
	stream := mustEncode(t, extent.Header{Kind: extent.Differential, Size: 1,
		Source: "a\nend records=0 data=0 zero=0", Snapshot: "\x1b[31mred", Base: "\"q\" base=x"}, nil)
	for _, asJSON := range []bool{false, true} {
		var out bytes.Buffer
		if err := extent.Dump(&out, bytes.NewReader(stream), asJSON); err != nil {
			t.Fatal(err)
		}
		if n := strings.Count(out.String(), "\n"); n != 2 || strings.ContainsRune(out.String(), 0x1b) {
			t.Errorf("json=%v:\n%s", asJSON, out.String())
		}
	}
}

type brokenWriter struct{ err error }

func (b brokenWriter) Write([]byte) (int, error) { return 0, b.err }

func TestDumpWriteError(t *testing.T) {
	boom := errors.New("stdout gone")
	big := readVector(t, "valid-full.bxs")
	for _, asJSON := range []bool{false, true} {
		if err := extent.Dump(brokenWriter{boom}, bytes.NewReader(big), asJSON); !errors.Is(err, boom) {
			t.Errorf("json=%v: got %v, want %v", asJSON, err, boom)
		}
	}
}
