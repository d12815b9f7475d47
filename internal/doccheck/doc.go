// Package doccheck holds tests that keep the documentation honest: every
// flag a command accepts appears in its man page, the stream format man
// page carries the specification's text, every sentinel error carries an
// exit code the man pages document, and the imports obey the layer table
// of docs/HACKING.md.
package doccheck
