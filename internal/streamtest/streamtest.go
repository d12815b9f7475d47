// Package streamtest reads extent streams back in tests of the packages
// that produce them (sources, restore).
package streamtest

import (
	"bytes"
	"io"
	"slices"
	"testing"

	"github.com/backy/backy/pkg/extent"
)

// Records decodes a complete stream into its header and records (payloads
// copied, since the Reader reuses its buffer); any error fails the test.
func Records(t testing.TB, stream []byte) (extent.Header, []extent.Record) {
	t.Helper()
	r, err := extent.NewReader(bytes.NewReader(stream))
	if err != nil {
		t.Fatal(err)
	}
	var recs []extent.Record
	for {
		rec, err := r.Next()
		if err == io.EOF {
			return r.Header(), recs
		}
		if err != nil {
			t.Fatal(err)
		}
		c := *rec
		c.Data = slices.Clone(rec.Data)
		recs = append(recs, c)
	}
}
