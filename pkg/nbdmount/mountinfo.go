package nbdmount

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// mountinfo is the mount table of this process's mount namespace.
const mountinfo = "/proc/self/mountinfo"

// mountEntry is one line of mountinfo: where and what.
type mountEntry struct {
	Point  string // mount point, unescaped
	FSType string // "fuse", "fuse.ext4", ...
}

// mounts reads the mount table, in mount order.
func mounts() ([]mountEntry, error) {
	f, err := os.Open(mountinfo)
	if err != nil {
		return nil, fmt.Errorf("nbdmount: %w", err)
	}
	defer f.Close()
	var out []mountEntry
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if e, ok := parseMountinfo(sc.Text()); ok {
			out = append(out, e)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("nbdmount: %s: %w", mountinfo, err)
	}
	return out, nil
}

// parseMountinfo reads one line of mountinfo (proc(5)): the mount point is
// field 5, the file system type follows the " - " separator.
func parseMountinfo(line string) (mountEntry, bool) {
	pre, post, ok := strings.Cut(line, " - ")
	if !ok {
		return mountEntry{}, false
	}
	f := strings.Fields(pre)
	p := strings.Fields(post)
	if len(f) < 5 || len(p) < 1 {
		return mountEntry{}, false
	}
	return mountEntry{Point: unescapeOctal(f[4]), FSType: p[0]}, true
}

// unescapeOctal undoes the kernel's \ooo escapes of space, tab, newline
// and backslash in mount points.
func unescapeOctal(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// fuseMountsUnder returns the FUSE mounts strictly below dir, in mount
// order (so the reverse is a safe unmount order).
func fuseMountsUnder(dir string) ([]string, error) {
	all, err := mounts()
	if err != nil {
		return nil, err
	}
	prefix := filepath.Clean(dir) + "/"
	var out []string
	for _, m := range all {
		if (m.FSType == "fuse" || strings.HasPrefix(m.FSType, "fuse.")) && strings.HasPrefix(m.Point, prefix) {
			out = append(out, m.Point)
		}
	}
	return out, nil
}

// isMounted says whether path is a mount point now.
func isMounted(path string) (bool, error) {
	all, err := mounts()
	if err != nil {
		return false, err
	}
	for _, m := range all {
		if m.Point == path {
			return true, nil
		}
	}
	return false, nil
}
