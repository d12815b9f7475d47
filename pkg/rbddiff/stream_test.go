package rbddiff

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"runtime"
	"testing"
)

// bigStream returns a v1 stream of n write records of length each, made
// on the fly: the data is never held in memory as a whole.
func bigStream(n int, length uint64) io.Reader {
	var hdr bytes.Buffer
	hdr.WriteString(MagicV1)
	hdr.WriteByte('s')
	binary.Write(&hdr, binary.LittleEndian, uint64(n)*length)
	readers := []io.Reader{&hdr}
	for i := 0; i < n; i++ {
		var rec bytes.Buffer
		rec.WriteByte('w')
		binary.Write(&rec, binary.LittleEndian, uint64(i)*length)
		binary.Write(&rec, binary.LittleEndian, length)
		readers = append(readers, &rec, io.LimitReader(fillA5{}, int64(length)))
	}
	readers = append(readers, bytes.NewReader([]byte{'e'}))
	return io.MultiReader(readers...)
}

// fillA5 reads as an endless run of 0xa5 bytes.
type fillA5 struct{}

func (fillA5) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 0xa5
	}
	return len(p), nil
}

// TestLargeWriteBoundedMemory reads a record of MaxWriteLength through a
// small buffer and checks that the Reader allocated far less than that.
func TestLargeWriteBoundedMemory(t *testing.T) {
	src := bigStream(1, MaxWriteLength)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	rd := NewReader(src)
	rec, err := rd.Next()
	if err != nil {
		t.Fatal(err)
	}
	if rec.Length != MaxWriteLength {
		t.Fatalf("record length %d", rec.Length)
	}
	buf := make([]byte, 32<<10)
	var total uint64
	for {
		n, err := rd.Read(buf)
		total += uint64(n)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if _, err := rd.Next(); err != io.EOF {
		t.Fatalf("Next after the record: %v, want io.EOF", err)
	}
	runtime.ReadMemStats(&after)
	if total != MaxWriteLength {
		t.Fatalf("read %d bytes, want %d", total, MaxWriteLength)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 4<<20 {
		t.Fatalf("reading a %d-byte record allocated %d bytes", uint64(MaxWriteLength), alloc)
	}
}

// TestNextSkipsData leaves record data unread and partly read.
func TestNextSkipsData(t *testing.T) {
	rd := NewReader(bigStream(4, 200000))
	var offs []uint64
	for i := 0; ; i++ {
		rec, err := rd.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		offs = append(offs, rec.Offset)
		if i == 1 {
			if _, err := io.ReadFull(rd, make([]byte, 1234)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if len(offs) != 4 || offs[3] != 600000 {
		t.Fatalf("records at %v", offs)
	}
}

func TestReadZeroRecord(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	must(t, w.WriteHeader(&Header{Version: 1, Size: 1 << 20}))
	must(t, w.WriteZero(0, 1<<20))
	must(t, w.Close())
	rd := NewReader(&buf)
	if n, err := rd.Read(make([]byte, 10)); n != 0 || err != io.EOF {
		t.Fatalf("Read before Next = %d, %v", n, err)
	}
	rec, err := rd.Next()
	if err != nil || rec.Type != TypeZero {
		t.Fatalf("Next = %v, %v", rec, err)
	}
	if n, err := rd.Read(make([]byte, 10)); n != 0 || err != io.EOF {
		t.Fatalf("Read of a zero record = %d, %v", n, err)
	}
}

// errReader fails with err after giving the bytes of b.
type errReader struct {
	b   []byte
	err error
}

func (e *errReader) Read(p []byte) (int, error) {
	if len(e.b) == 0 {
		return 0, e.err
	}
	n := copy(p, e.b)
	e.b = e.b[n:]
	return n, nil
}

func TestReaderIOError(t *testing.T) {
	boom := errors.New("boom")
	valid := []byte(MagicV1 + "s\x00\x00\x10\x00\x00\x00\x00\x00w\x00\x00\x00\x00\x00\x00\x00\x00\x10\x00\x00\x00\x00\x00\x00\x00abc")
	for n := 0; n <= len(valid); n++ {
		_, err := decode(&errReader{valid[:n], boom})
		if !errors.Is(err, boom) {
			t.Fatalf("cut at %d: got %v, want boom", n, err)
		}
	}
}

func TestWriterRefusals(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	if err := w.WriteZero(0, 1); !errors.Is(err, ErrBadRecord) {
		t.Errorf("record before header: %v", err)
	}
	yes := true
	if err := w.WriteHeader(&Header{Version: 1, Size: 10, Protected: &yes}); !errors.Is(err, ErrBadTag) {
		t.Errorf("protected in v1: %v", err)
	}
	if err := w.WriteHeader(&Header{Version: 3}); !errors.Is(err, ErrBadRecord) {
		t.Errorf("version 3: %v", err)
	}
	if err := w.WriteHeader(&Header{Version: 1, ToSnap: string(make([]byte, MaxSnapName+1))}); !errors.Is(err, ErrTooLong) {
		t.Errorf("long name: %v", err)
	}
	must(t, w.WriteHeader(&Header{Version: 1, Size: 1 << 30}))
	if err := w.WriteHeader(&Header{Version: 1}); !errors.Is(err, ErrBadRecord) {
		t.Errorf("second header: %v", err)
	}
	must(t, w.WriteZero(4096, 4096))
	for _, c := range []struct {
		rec  Record
		want error
	}{
		{Record{TypeZero, 0, 4096}, ErrOrder},
		{Record{TypeZero, 4096, 1}, ErrOrder},
		{Record{TypeZero, 8192, 0}, ErrBadRecord},
		{Record{TypeWrite, 8192, MaxWriteLength + 1}, ErrTooLong},
		{Record{TypeZero, 1 << 30, 1}, ErrOutOfRange},
		{Record{TypeZero, 8192, ^uint64(0)}, ErrOutOfRange},
		{Record{'q', 8192, 1}, ErrBadTag},
	} {
		if err := w.WriteRecord(&c.rec); !errors.Is(err, c.want) {
			t.Errorf("%+v: got %v, want %v", c.rec, err, c.want)
		}
	}
	// Refused records left the Writer usable.
	must(t, w.WriteRecord(&Record{TypeWrite, 8192, 3}))
	if n, err := w.Write([]byte("abcd")); n != 3 || !errors.Is(err, ErrWriteTooLong) {
		t.Errorf("Write past the record = %d, %v", n, err)
	}
	must(t, w.WriteData(1<<20, []byte("x")))
	must(t, w.Close())
	must(t, w.Close())
	if err := w.WriteZero(1<<21, 1); !errors.Is(err, ErrClosed) {
		t.Errorf("after Close: %v", err)
	}
	d, err := decode(&buf)
	if err != nil {
		t.Fatal(err)
	}
	want := "version 1\nsize 1073741824\nz 4096 4096\nw 8192 3 crc32c=364b3fb7\nw 1048576 1 crc32c=a93c5f93\nend\n"
	if got := d.text(); got != want {
		t.Fatalf("wrote\n%s\nwant\n%s", got, want)
	}
}

func TestWriterMissingData(t *testing.T) {
	for _, next := range []func(*Writer) error{
		func(w *Writer) error { return w.WriteZero(100, 1) },
		func(w *Writer) error { return w.Close() },
	} {
		var buf bytes.Buffer
		w := NewWriter(&buf)
		must(t, w.WriteHeader(&Header{Version: 2, Size: 1000}))
		must(t, w.WriteRecord(&Record{TypeWrite, 0, 10}))
		w.Write([]byte("12345"))
		if err := next(w); !errors.Is(err, ErrMissingData) {
			t.Fatalf("got %v, want ErrMissingData", err)
		}
		if err := w.Close(); !errors.Is(err, ErrMissingData) {
			t.Fatalf("error not sticky: %v", err)
		}
		if _, err := decode(&buf); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("reading the broken stream: %v", err)
		}
	}
}

type failWriter struct{ n int }

func (f *failWriter) Write(p []byte) (int, error) {
	if len(p) > f.n {
		n := f.n
		f.n = 0
		return n, errors.New("disk full")
	}
	f.n -= len(p)
	return len(p), nil
}

func TestWriterIOErrorSticky(t *testing.T) {
	w := NewWriter(&failWriter{n: 100})
	must(t, w.WriteHeader(&Header{Version: 1, Size: 1 << 30}))
	var err error
	for i := uint64(0); err == nil && i < 100; i++ {
		err = w.WriteData(i<<20, make([]byte, 1<<16))
	}
	if err == nil || err.Error() != "rbddiff: disk full" {
		t.Fatalf("got %v, want rbddiff: disk full", err)
	}
	if err2 := w.Close(); err2 != err {
		t.Fatalf("Close after the error: %v", err2)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
