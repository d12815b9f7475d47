package main

// The manifest (testdata/vectors.json) says for every vector what a reader
// must make of it. It is JSON so that an implementation in another language
// can use the same vectors.

type manifest struct {
	Comment string       `json:"comment"`
	Vectors []vectorJSON `json:"vectors"`
}

type vectorJSON struct {
	Name        string `json:"name"`
	File        string `json:"file"`
	Description string `json:"description"`
	Valid       bool   `json:"valid"`
	// Error names the pkg/extent sentinel the reader's error must wrap
	// (ErrTruncated wraps io.ErrUnexpectedEOF).
	Error string `json:"error,omitempty"`
	// FailsIn is "header" when reading the header fails, "records" when
	// a later record (or what follows END) does.
	FailsIn string      `json:"fails_in,omitempty"`
	Header  *headerJSON `json:"header,omitempty"`
	// Records are what a reader returns, in order; for an invalid stream,
	// the records it returns before the error.
	Records []recordJSON `json:"records"`
	Summary *summaryJSON `json:"summary,omitempty"`
}

type headerJSON struct {
	Kind     string `json:"kind"`
	Size     uint64 `json:"size"`
	Source   string `json:"source"`
	Snapshot string `json:"snapshot"`
	Base     string `json:"base"`
	// The consistency block, when the stream has one.
	Consistency string `json:"consistency,omitempty"`
	FrozenNanos uint64 `json:"frozen_ns,omitempty"`
	Reason      string `json:"reason,omitempty"`
}

type recordJSON struct {
	Type   string `json:"type"`
	Offset uint64 `json:"offset"`
	Length uint64 `json:"length"`
	SHA256 string `json:"sha256,omitempty"` // of a data record's payload
}

type summaryJSON struct {
	Records uint64 `json:"records"`
	Data    uint64 `json:"data"`
	Zero    uint64 `json:"zero"`
}

const manifestComment = "Test vectors of the backy extent stream (docs/extent-stream.md), " +
	"made by go generate ./pkg/extent; do not edit. Every valid vector decodes to its " +
	"header, records and summary; every invalid one fails with the named pkg/extent " +
	"sentinel after returning the listed records, and never with io.EOF."
