//go:build !librbd

package repo

import "fmt"

// RadosAvailable reports whether this build has the RADOS backend.
const RadosAvailable = false

func openRados(loc string, _ openOptions, _ bool) (*Repo, error) {
	if _, err := ParseRadosLocation(loc); err != nil {
		return nil, err
	}
	return nil, fmt.Errorf("%w: %s", ErrNoRados, loc)
}
