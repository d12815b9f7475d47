package rbd

import (
	"fmt"
	"strings"

	"github.com/backy/backy/pkg/extent"
)

// Image names an RBD image, optionally at a snapshot.
type Image struct {
	Pool string
	Name string
	Snap string // "" for the image head
}

// ParseImage parses POOL/IMAGE or POOL/IMAGE@SNAP.
func ParseImage(s string) (Image, error) {
	spec, snap, hasSnap := strings.Cut(s, "@")
	pool, name, ok := strings.Cut(spec, "/")
	img := Image{Pool: pool, Name: name, Snap: snap}
	switch {
	case !ok || pool == "" || name == "":
		return Image{}, fmt.Errorf("%w: %q: want POOL/IMAGE or POOL/IMAGE@SNAP", ErrBadName, s)
	case strings.Contains(name, "/"):
		return Image{}, fmt.Errorf("%w: %q: namespaces are not supported, want POOL/IMAGE", ErrBadName, s)
	case hasSnap && snap == "":
		return Image{}, fmt.Errorf("%w: %q: empty snapshot name", ErrBadName, s)
	case strings.ContainsAny(s, " \t\n\x00"):
		return Image{}, fmt.Errorf("%w: %q contains blanks", ErrBadName, s)
	}
	return img, nil
}

// Spec returns POOL/IMAGE, without the snapshot.
func (i Image) Spec() string { return i.Pool + "/" + i.Name }

// At returns the image at snapshot snap.
func (i Image) At(snap string) Image { i.Snap = snap; return i }

// String returns POOL/IMAGE or POOL/IMAGE@SNAP, as rbd spells it.
func (i Image) String() string {
	if i.Snap == "" {
		return i.Spec()
	}
	return i.Spec() + "@" + i.Snap
}

// Source is the source name recorded in stream headers and revisions.
func (i Image) Source() string { return extent.RBDSource + i.Spec() }

// checkID accepts what makes a harmless snapshot name: backy's own revision
// ids, and ids a scheduler makes up, but nothing rbd would read as syntax.
func checkID(id string) error {
	if id == "" || len(id) > 64 {
		return fmt.Errorf("%w: id %q must have 1 to 64 characters", ErrBadName, id)
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return fmt.Errorf("%w: id %q: only letters, digits, '-', '_' and '.'", ErrBadName, id)
		}
	}
	return nil
}
