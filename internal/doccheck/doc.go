// Package doccheck holds tests that keep the documentation honest: every
// flag a command accepts appears in its man page, and the stream format
// man page carries the specification's text.
package doccheck
