// Package pattern makes deterministic, poorly compressible bytes for tests
// and test-vector generators, so that they need no binary fixtures.
package pattern

// Bytes returns n bytes of a xorshift32 sequence started from seed: the
// same seed always gives the same bytes.
func Bytes(seed uint32, n int) []byte {
	b := make([]byte, n)
	x := seed*2654435761 + 1
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x >> 24)
	}
	return b
}

// NonZero is Bytes with the low bit of every byte set, so that no byte (and
// no page) of it is zero: data that can never be mistaken for a hole.
func NonZero(seed uint32, n int) []byte {
	b := Bytes(seed, n)
	for i := range b {
		b[i] |= 1
	}
	return b
}
