package rbddiff

import (
	"bytes"
	"io"
	"testing"
)

// benchStream returns a v1 stream of n write records of length each.
func benchStream(b *testing.B, n int, length int) []byte {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	if err := w.WriteHeader(&Header{Version: 1, Size: uint64(n * length)}); err != nil {
		b.Fatal(err)
	}
	data := bytes.Repeat([]byte{0x5a}, length)
	for i := 0; i < n; i++ {
		if err := w.WriteData(uint64(i*length), data); err != nil {
			b.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
	return buf.Bytes()
}

// BenchmarkReadLargeWrites decodes 4 MiB write records (the size rbd
// export-diff writes for default 4 MiB objects) into a 1 MiB buffer.
func BenchmarkReadLargeWrites(b *testing.B) {
	for _, c := range []struct {
		name   string
		length int
		piece  int
	}{
		{"4MiB-records/1MiB-reads", 4 << 20, 1 << 20},
		{"4MiB-records/32KiB-reads", 4 << 20, 32 << 10},
		{"64MiB-record/1MiB-reads", MaxWriteLength, 1 << 20},
	} {
		b.Run(c.name, func(b *testing.B) {
			stream := benchStream(b, (64<<20)/c.length, c.length)
			buf := make([]byte, c.piece)
			b.SetBytes(int64(len(stream)))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				rd := NewReader(bytes.NewReader(stream))
				for {
					_, err := rd.Next()
					if err == io.EOF {
						break
					}
					if err != nil {
						b.Fatal(err)
					}
					for {
						_, err := rd.Read(buf)
						if err == io.EOF {
							break
						}
						if err != nil {
							b.Fatal(err)
						}
					}
				}
			}
		})
	}
}

// BenchmarkWriteLargeWrites encodes 4 MiB write records.
func BenchmarkWriteLargeWrites(b *testing.B) {
	data := bytes.Repeat([]byte{0x5a}, 4<<20)
	b.SetBytes(int64(len(data)) * 16)
	for i := 0; i < b.N; i++ {
		w := NewWriter(io.Discard)
		if err := w.WriteHeader(&Header{Version: 1, Size: 64 << 20}); err != nil {
			b.Fatal(err)
		}
		for j := 0; j < 16; j++ {
			if err := w.WriteData(uint64(j*len(data)), data); err != nil {
				b.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			b.Fatal(err)
		}
	}
}
