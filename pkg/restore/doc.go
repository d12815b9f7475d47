// Package restore gives a revision back: as a raw image on a stream, into a
// file (with holes where chunks are zero) or a block device, as an extent
// stream, or as an "rbd diff v1" stream. Every chunk is verified against its
// hash before a byte of it is written; reading and decompressing run ahead
// on every core while output stays in order.
package restore
