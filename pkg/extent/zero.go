package extent

import "bytes"

// zeroBlock is compared against; it is never written.
var zeroBlock = make([]byte, MaxDataLength)

// Zeros returns n zero bytes (n at most MaxDataLength) from one buffer the
// whole program shares: callers read them and never write them.
func Zeros(n int) []byte { return zeroBlock[:n:n] }

// IsZero reports whether p holds only zero bytes. Producers use it to send
// all-zero data as zero records, as the format asks; it stops at the first
// non-zero byte, so data costs almost nothing to check.
func IsZero(p []byte) bool {
	for len(p) > 0 {
		n := min(len(p), len(zeroBlock))
		if !bytes.Equal(p[:n], zeroBlock[:n]) {
			return false
		}
		p = p[n:]
	}
	return true
}
