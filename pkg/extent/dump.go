package extent

import (
	"bufio"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
)

// Dump prints the stream read from r to w, one line for the header, each
// record and the END record:
//
//	header kind=full size=1048576 source="rbd:pool/vm" snapshot="backy-2" base=""
//	data offset=0 length=4096 crc=8a1f03c2
//	zero offset=4096 length=8192
//	end records=2 data=4096 zero=8192
//
// With asJSON every line is instead a JSON object with the same fields and a
// "type" naming the line ("header", "data", "zero", "end"). Names are quoted
// because a stream is untrusted input: a name with a newline or a terminal
// escape must not forge lines or reach the terminal raw. crc is the record
// checksum as stored in the stream.
//
// Dump returns the Reader's error: a broken stream prints what was read up
// to the fault, then Dump returns the error; the end line appears only for a
// complete stream.
func Dump(w io.Writer, r io.Reader, asJSON bool) error {
	bw := bufio.NewWriter(w)
	d := dumper{w: bw, json: json.NewEncoder(bw), asJSON: asJSON}
	d.json.SetEscapeHTML(false)
	err := d.dump(r)
	if ferr := bw.Flush(); err == nil {
		err = ferr
	}
	return err
}

type dumper struct {
	w      *bufio.Writer
	json   *json.Encoder
	asJSON bool
	err    error // first error writing w
}

// The JSON lines; field order is the order of the text form.
type (
	dumpHeader struct {
		Type     string `json:"type"`
		Kind     string `json:"kind"`
		Size     int64  `json:"size"`
		Source   string `json:"source"`
		Snapshot string `json:"snapshot"`
		Base     string `json:"base"`
		// The consistency block, when the stream has one.
		Consistency string  `json:"consistency,omitempty"`
		Reason      string  `json:"reason,omitempty"`
		Frozen      float64 `json:"frozen_seconds,omitempty"`
	}
	dumpRecord struct {
		Type   string `json:"type"`
		Offset int64  `json:"offset"`
		Length int64  `json:"length"`
		CRC    string `json:"crc,omitempty"` // data records only
	}
	dumpEnd struct {
		Type    string `json:"type"`
		Records int64  `json:"records"`
		Data    int64  `json:"data"`
		Zero    int64  `json:"zero"`
	}
)

func (d *dumper) dump(r io.Reader) error {
	sr, err := NewReader(r)
	if err != nil {
		return err
	}
	h := sr.Header()
	if d.asJSON {
		d.encode(dumpHeader{"header", h.Kind.String(), h.Size, h.Source, h.Snapshot, h.Base,
			h.Consistency, h.Reason, h.Frozen.Seconds()})
	} else {
		d.printf("header kind=%s size=%d source=%q snapshot=%q base=%q",
			h.Kind, h.Size, h.Source, h.Snapshot, h.Base)
		if h.Consistency != "" {
			d.printf(" consistency=%s frozen=%s reason=%q", h.Consistency, h.Frozen, h.Reason)
		}
		d.printf("\n")
	}
	for d.err == nil {
		rec, err := sr.Next()
		if err == io.EOF {
			d.end(sr.Summary())
			break
		}
		if err != nil {
			return err
		}
		d.record(rec)
	}
	return d.err
}

func (d *dumper) record(rec *Record) {
	switch {
	case rec.Type == Data && d.asJSON:
		d.encode(dumpRecord{"data", rec.Offset, rec.Length, fmt.Sprintf("%08x", recordChecksum(rec))})
	case rec.Type == Data:
		d.printf("data offset=%d length=%d crc=%08x\n", rec.Offset, rec.Length, recordChecksum(rec))
	case d.asJSON:
		d.encode(dumpRecord{"zero", rec.Offset, rec.Length, ""})
	default:
		d.printf("zero offset=%d length=%d\n", rec.Offset, rec.Length)
	}
}

func (d *dumper) end(s Summary) {
	if d.asJSON {
		d.encode(dumpEnd{"end", s.Records, s.DataBytes, s.ZeroBytes})
	} else {
		d.printf("end records=%d data=%d zero=%d\n", s.Records, s.DataBytes, s.ZeroBytes)
	}
}

func (d *dumper) printf(format string, args ...any) {
	if d.err == nil {
		_, d.err = fmt.Fprintf(d.w, format, args...)
	}
}

func (d *dumper) encode(v any) {
	if d.err == nil {
		d.err = d.json.Encode(v)
	}
}

// recordChecksum recomputes the checksum the stream stored for rec; the
// Reader has verified that they are equal.
func recordChecksum(rec *Record) uint32 {
	var h [recordHeaderLen]byte
	putRecordHeader(h[:], rec.Type, rec.Offset, rec.Length)
	return crc32.Update(checksum(h[:20]), castagnoli, rec.Data)
}
