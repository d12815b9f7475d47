//go:build !librbd

package main

import "errors"

// poolDigest needs librados; scripts that use radoshash skip without it.
func poolDigest(conf, pool string) (string, error) {
	return "", errors.New("radoshash: built without librados (tags librbd,pacific)")
}
