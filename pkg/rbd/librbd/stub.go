//go:build !librbd

package librbd

import (
	"context"

	"github.com/backy/backy/pkg/rbd"
)

// Available reports whether this build has the librbd engine.
const Available = false

// New fails: this build has no librbd engine.
func New(context.Context, rbd.Conn) (rbd.Engine, error) { return nil, rbd.ErrNoLibrbd }
