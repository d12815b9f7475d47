//go:build librbd

package main

import (
	"crypto/sha256"
	"fmt"
	"slices"
	"strings"

	"github.com/ceph/go-ceph/rados"
)

// poolDigest lists every object of pool with the SHA-256 of its content
// and of its omap (radoshash), through librados: one connection, where
// the rados command would start once per object.
func poolDigest(conf, pool string) (string, error) {
	conn, err := rados.NewConn()
	if err != nil {
		return "", err
	}
	if err := conn.ReadConfigFile(conf); err != nil {
		return "", err
	}
	if err := conn.Connect(); err != nil {
		return "", err
	}
	defer conn.Shutdown()
	io, err := conn.OpenIOContext(pool)
	if err != nil {
		return "", err
	}
	defer io.Destroy()
	var names []string
	if err := io.ListObjects(func(oid string) { names = append(names, oid) }); err != nil {
		return "", err
	}
	slices.Sort(names)
	var out strings.Builder
	for _, n := range names {
		st, err := io.Stat(n)
		if err != nil {
			return "", err
		}
		data := make([]byte, st.Size)
		if _, err := io.Read(n, data, 0); err != nil {
			return "", err
		}
		omap, err := io.GetAllOmapValues(n, "", "", 1000)
		if err != nil {
			return "", err
		}
		keys := make([]string, 0, len(omap))
		for k := range omap {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		h := sha256.New()
		for _, k := range keys {
			fmt.Fprintf(h, "%q=%q\n", k, omap[k])
		}
		fmt.Fprintf(&out, "%s %x %x\n", n, sha256.Sum256(data), h.Sum(nil))
	}
	return out.String(), nil
}
