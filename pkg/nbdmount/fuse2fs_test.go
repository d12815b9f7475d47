package nbdmount

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestProbeFuse2fs: what --version says decides whether a fuse2fs passes
// read errors on: e2fsprogs 1.47.4 or later with backy's patch, linked
// with libfuse2.
func TestProbeFuse2fs(t *testing.T) {
	d := t.TempDir()
	for _, c := range []struct {
		name, out, version string
		passes             bool
	}{
		// Debian 12's
		{"debian12", "fuse2fs 1.47.0 (5-Feb-2023)\nFUSE library version: 2.9.9\nfusermount3 version: 3.14.0\nusing FUSE kernel interface version 7.19\n", "1.47.0", false},
		// what scripts/deps.sh builds
		{"built", "fuse2fs 1.47.4-backy1 (6-Mar-2025)\nFUSE library version: 2.9.9\nusing FUSE kernel interface version 7.19\n", "1.47.4-backy1", true},
		// unpatched: EBADF after the first error
		{"upstream", "fuse2fs 1.47.4 (6-Mar-2025)\nFUSE library version: 2.9.9\n", "1.47.4", false},
		// 1.47.4 with libfuse3: no -o direct_io
		{"fuse3", "fuse2fs 1.47.4-backy1 (6-Mar-2025)\nfusermount3 version: 3.14.0\nFUSE library version 3.14.0\nusing FUSE kernel interface version 7.31\n", "1.47.4-backy1", false},
		{"1.47.3", "fuse2fs 1.47.3-backy1 (20-May-2025)\nFUSE library version: 2.9.9\n", "1.47.3-backy1", false},
		{"1.48", "fuse2fs 1.48.0-backy2 (1-Jan-2027)\nFUSE library version: 2.9.9\n", "1.48.0-backy2", true},
		{"2.0", "fuse2fs 2.0-backy1 (1-Jan-2030)\nFUSE library version: 2.9.9\n", "2.0-backy1", true},
		{"garbage", "fuse: unknown option\n", "", false},
	} {
		p := filepath.Join(d, c.name)
		script := "#!/bin/sh\n[ \"$1\" = --version ] || exit 2\nprintf '" + c.out + "' >&2\n"
		if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
		got := probeFuse2fs(p)
		if got.version != c.version || got.passesErrors != c.passes {
			t.Errorf("%s: version %q, passes errors %v; want %q, %v", c.name, got.version, got.passesErrors, c.version, c.passes)
		}
	}
	if got := probeFuse2fs(filepath.Join(d, "missing")); got.version != "" || got.passesErrors {
		t.Errorf("a missing program: %+v", got)
	}
}

// TestFindFuse2fs: $BACKY_FUSE2FS alone when set, a path or a name on
// PATH; a path that is not there is an error naming it.
func TestFindFuse2fs(t *testing.T) {
	d := t.TempDir()
	p := filepath.Join(d, "fuse2fs")
	os.WriteFile(p, []byte("#!/bin/sh\necho 'fuse2fs 1.47.4-backy1 (6-Mar-2025)' >&2; echo 'FUSE library version: 2.9.9' >&2\n"), 0o755)
	t.Setenv(Fuse2fsEnv, p)
	first, fallback, err := findFuse2fs()
	if err != nil || first.path != p || !first.passesErrors || fallback != nil {
		t.Errorf("%s=%s: %v, %v, %v", Fuse2fsEnv, p, first, fallback, err)
	}
	t.Setenv("PATH", d)
	t.Setenv(Fuse2fsEnv, "fuse2fs")
	if first, _, err = findFuse2fs(); err != nil || first.path != p {
		t.Errorf("%s=fuse2fs, PATH=%s: %v, %v", Fuse2fsEnv, d, first, err)
	}
	t.Setenv(Fuse2fsEnv, filepath.Join(d, "nothing"))
	if _, _, err = findFuse2fs(); err == nil {
		t.Error("a missing path: no error")
	}
}

// TestKnownFuse2fsIsWhatDepsBuilds: knownFuse2fs names the program
// scripts/deps.sh installs (one fact, written in two languages).
func TestKnownFuse2fsIsWhatDepsBuilds(t *testing.T) {
	b, err := os.ReadFile("../../scripts/deps.sh")
	if err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^(E2FS_VERSION|E2FS_PATCHED|FUSE2FS)=(\S+)`).FindAllStringSubmatch(string(b), -1) {
		v := m[2]
		for k, x := range vars {
			v = strings.NewReplacer("${"+k+"}", x, "$"+k, x).Replace(v)
		}
		vars[m[1]] = v
	}
	if got := vars["FUSE2FS"]; got != knownFuse2fs[0] {
		t.Errorf("scripts/deps.sh installs %q (%v), knownFuse2fs[0] is %q", got, vars, knownFuse2fs[0])
	}
}
