package nbdmount

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Fuse2fsEnv names the environment variable that chooses the fuse2fs
// program: a path, or a name looked up on PATH ("fuse2fs": Debian's);
// then that one alone is run.
const Fuse2fsEnv = "BACKY_FUSE2FS"

// knownFuse2fs are the fuse2fs programs scripts/deps.sh builds, newest
// first. Each is tried before the one on PATH.
var knownFuse2fs = []string{"/usr/local/lib/backy/fuse2fs-1.47.4-backy1/fuse2fs"}

// fuse2fsProg is a fuse2fs program and what it does with a read error of
// its device (images.go).
type fuse2fsProg struct {
	path    string
	version string // "1.47.4-backy1", "" when --version did not say
	// passesErrors: it turns a read error of its device into EIO for the
	// reader and goes on (what scripts/deps.sh builds, run with -o
	// direct_io). Otherwise the device kills it first.
	passesErrors bool
}

func (p *fuse2fsProg) String() string {
	v := p.version
	if v == "" {
		v = "version unknown"
	}
	return p.path + " (" + v + ")"
}

var (
	fuse2fsVersion = regexp.MustCompile(`(?m)^fuse2fs (\d+)\.(\d+)(?:\.(\d+))?(-backy\d+)?`)
	fuseLibrary    = regexp.MustCompile(`(?m)^FUSE library version:? (\d+)\.`)
)

// probeFuse2fs asks a fuse2fs its version and its FUSE library's
// (--version prints both and exits). It passes read errors on when it is
// what scripts/deps.sh builds: e2fsprogs 1.47.4 or later, whose read
// errors reach FUSE as negative errnos (1.47.0 returned them as byte
// counts), with backy's patch (version X.Y.Z-backyN: a read error is not
// noted in the superblock of a read-only file system; unpatched, the
// failed write of that note leaves a dirty block in its cache, and every
// later cache miss fails with EBADF), linked with libfuse2, whose -o
// direct_io it is run with (in the page cache a short read, which fuse2fs
// returns when an error meets a read after its first block, is taken by
// the kernel as the end of the file: the file read as truncated, without
// an error; libfuse 3.14's fuse2fs has no direct_io option). No released
// e2fsprogs is known to do without the patch.
func probeFuse2fs(path string) *fuse2fsProg {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, _ := exec.CommandContext(ctx, path, "--version").CombinedOutput()
	p := &fuse2fsProg{path: path}
	m := fuse2fsVersion.FindSubmatch(out)
	if m == nil {
		return p
	}
	p.version = string(m[1]) + "." + string(m[2])
	if len(m[3]) > 0 {
		p.version += "." + string(m[3])
	}
	p.version += string(m[4])
	v := [3]int{}
	for i := range v {
		v[i], _ = strconv.Atoi(string(m[i+1]))
	}
	newEnough := v[0] > 1 || v[0] == 1 && (v[1] > 47 || v[1] == 47 && v[2] >= 4)
	lib := fuseLibrary.FindSubmatch(out)
	p.passesErrors = newEnough && len(m[4]) > 0 && lib != nil && string(lib[1]) == "2"
	return p
}

// findFuse2fs returns the fuse2fs to run, and the one to run instead for
// a file system the first refuses (nil when there is none): $BACKY_FUSE2FS
// alone when it is set; else the first of knownFuse2fs that is there,
// with the one on PATH (Debian's) as the fallback, whose older e2fsprogs
// mounts file systems 1.47.4 refuses (the quota feature); else the one on
// PATH.
func findFuse2fs() (first, fallback *fuse2fsProg, err error) {
	if p := os.Getenv(Fuse2fsEnv); p != "" {
		if !strings.Contains(p, "/") { // "fuse2fs": the one on PATH
			q, err := findHelper(p)
			if err != nil && packages[p] == "" { // the user's name: say where it came from
				return nil, nil, fmt.Errorf("%w: %s=%s: not on PATH, nor in /usr/sbin or /sbin", ErrNoHelper, Fuse2fsEnv, p)
			}
			if err != nil {
				return nil, nil, err
			}
			p = q
		} else if _, err := exec.LookPath(p); err != nil {
			return nil, nil, fmt.Errorf("%w: %s=%s: %w", ErrNoHelper, Fuse2fsEnv, p, err)
		}
		return probeFuse2fs(p), nil, nil
	}
	onPath, pathErr := findHelper("fuse2fs")
	for _, p := range knownFuse2fs {
		if _, err := exec.LookPath(p); err == nil {
			if pathErr == nil {
				fallback = probeFuse2fs(onPath)
			}
			return probeFuse2fs(p), fallback, nil
		}
	}
	if pathErr != nil {
		return nil, nil, pathErr
	}
	return probeFuse2fs(onPath), nil, nil
}
