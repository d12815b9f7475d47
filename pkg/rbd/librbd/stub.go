//go:build !librbd

package librbd

import "github.com/backy/backy/pkg/rbd"

// Available reports whether this build has the librbd engine.
const Available = false

// New fails: this build has no librbd engine.
func New(rbd.Conn) (rbd.Engine, error) { return nil, rbd.ErrNoLibrbd }
