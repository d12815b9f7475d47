package extent_test

import (
	"encoding/binary"
	"hash/crc32"
	"testing"

	"github.com/backy/backy/pkg/extent"
)

// forgeDataRecord returns a valid header (image of MaxImageSize) followed by
// the header of a data record claiming length bytes, with a right record
// checksum over that header alone, and no payload. A Reader must refuse it
// or report truncation without reading a payload it may not allocate.
func forgeDataRecord(t testing.TB, length uint64) []byte {
	t.Helper()
	s := mustEncode(t, extent.Header{Kind: extent.Full, Size: extent.MaxImageSize}, nil)
	s = s[:len(s)-40] // drop the END record
	rec := []byte{'D', 0, 0, 0}
	rec = binary.BigEndian.AppendUint64(rec, 0)
	rec = binary.BigEndian.AppendUint64(rec, length)
	rec = binary.BigEndian.AppendUint32(rec, crc32.Checksum(rec, crc32.MakeTable(crc32.Castagnoli)))
	return append(s, rec...)
}
