// Package extent reads and writes the backy extent stream, the binary format
// that joins the backy commands (backy-extract | backy-store, backy-restore
// --format extents). The format is specified in docs/extent-stream.md.
//
// The Reader and Writer are shaped like archive/tar: a Reader returns one
// record per call to Next, io.EOF only after a verified END record with
// nothing behind it, and an error wrapping io.ErrUnexpectedEOF for a stream
// that stops early. Errors are sticky: once a Reader or Writer has failed it
// keeps returning the same error.
package extent

//go:generate go run ./internal/genvectors -o testdata
