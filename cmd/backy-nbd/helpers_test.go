package main

import (
	"bufio"
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/backy/backy/internal/clitest"
	"github.com/backy/backy/internal/nbdtest"
)

// fixture is a repository made by the real pipeline from two ext4 images
// (mke2fs -d): revision "old" tagged daily (40 MiB and 777 bytes), and
// "new", the latest (40 MiB).
type fixture struct {
	repo     string
	img      map[string]string // "old", "new" -> image file
	id       map[string]string // "old", "new" -> revision id
	restored map[string]string // "old", "new" -> backy-restore output
	files    map[string][]byte // path in the file system -> content
}

var (
	fixOnce sync.Once
	fix     *fixture
	fixErr  error
	fixDir  string
)

// getFixture builds the fixture once per test binary; tests that change the
// repository copy it first.
func getFixture(t *testing.T) *fixture {
	t.Helper()
	mke2fs := needTool(t, "mke2fs")
	fixOnce.Do(func() { fix, fixErr = buildFixture(mke2fs) })
	if fixErr != nil {
		t.Fatal(fixErr)
	}
	return fix
}

func buildFixture(mke2fs string) (*fixture, error) {
	var err error
	if fixDir, err = os.MkdirTemp("", "backy-nbd-test-"); err != nil {
		return nil, err
	}
	f := &fixture{repo: filepath.Join(fixDir, "repo"), img: map[string]string{}, id: map[string]string{},
		restored: map[string]string{}, files: map[string][]byte{}}
	src := filepath.Join(fixDir, "src")
	rnd := rand.NewChaCha8([32]byte{42})
	put := func(name string, size int) error {
		b := make([]byte, size)
		rnd.Read(b)
		f.files[name] = b
		p := filepath.Join(src, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		return os.WriteFile(p, b, 0o644)
	}
	for name, size := range map[string]int{"etc/app/data.bin": 300<<10 + 17, "srv/big.bin": 9 << 20, "home/a.txt": 5000} {
		if err := put(name, size); err != nil {
			return nil, err
		}
	}
	for _, rev := range []string{"old", "new"} {
		if rev == "new" { // the file changes between the backups
			if err := put("home/a.txt", 7000); err != nil {
				return nil, err
			}
		}
		img := filepath.Join(fixDir, rev+".img")
		if err := os.WriteFile(img, nil, 0o644); err != nil {
			return nil, err
		}
		size := int64(40 << 20)
		if rev == "old" { // a size that is no multiple of 512: short last blocks
			size += 777
		}
		if err := os.Truncate(img, size); err != nil {
			return nil, err
		}
		if out, err := exec.Command(mke2fs, "-q", "-F", "-t", "ext4", "-d", src, img).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("mke2fs: %v: %s", err, out)
		}
		var tags []string
		if rev == "old" {
			tags = []string{"--tags", "daily"}
			f.files["old:home/a.txt"] = f.files["home/a.txt"]
		}
		id, err := pipeline(img, f.repo, tags...)
		if err != nil {
			return nil, err
		}
		f.img[rev], f.id[rev] = img, id
		f.restored[rev] = filepath.Join(fixDir, rev+".restored")
		out, err := exec.Command(filepath.Join(clitest.BinDir, "backy-restore"), "-b", f.repo, "-r", id, f.restored[rev]).CombinedOutput()
		if err != nil {
			return nil, fmt.Errorf("backy-restore: %v: %s", err, out)
		}
		time.Sleep(10 * time.Millisecond) // distinct revision times
	}
	return f, nil
}

// pipeline runs backy-extract file IMG | backy-store -b REPO and returns
// the new revision's id.
func pipeline(img, repoDir string, storeArgs ...string) (string, error) {
	extract := exec.Command(filepath.Join(clitest.BinDir, "backy-extract"), "file", img)
	store := exec.Command(filepath.Join(clitest.BinDir, "backy-store"), append([]string{"-b", repoDir}, storeArgs...)...)
	pr, pw, err := os.Pipe()
	if err != nil {
		return "", err
	}
	var eout, sout, stdout bytes.Buffer
	extract.Stdout, extract.Stderr = pw, &eout
	store.Stdin, store.Stdout, store.Stderr = pr, &stdout, &sout
	if err := extract.Start(); err != nil {
		return "", err
	}
	if err := store.Start(); err != nil {
		return "", err
	}
	pw.Close()
	pr.Close()
	eerr, serr := extract.Wait(), store.Wait()
	if eerr != nil || serr != nil {
		return "", fmt.Errorf("backy-extract | backy-store: %v, %v: %s%s", eerr, serr, eout.String(), sout.String())
	}
	return strings.TrimSpace(stdout.String()), nil
}

// copyRepo copies the fixture's repository for a test that changes it.
func copyRepo(t *testing.T, f *fixture) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "repo")
	if out, err := exec.Command("cp", "-a", f.repo, dst).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v: %s", err, out)
	}
	return dst
}

// server is a running backy-nbd process.
type server struct {
	addr string
	cmd  *exec.Cmd
	mu   sync.Mutex
	log  bytes.Buffer
	done chan struct{} // closed when the process has exited
	err  error         // its exit status, once done
}

var listening = regexp.MustCompile(`msg=listening addr=(\S+)`)

// startServer runs backy-nbd -b repo -p 0 ARGS... and waits until it
// listens; at the end of the test it is stopped with SIGTERM and must exit 0.
func startServer(t *testing.T, repoDir string, args ...string) *server {
	t.Helper()
	s := &server{done: make(chan struct{})}
	s.cmd = exec.Command("backy-nbd", append([]string{"-b", repoDir, "-p", "0"}, args...)...)
	stderr, err := s.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			s.mu.Lock()
			s.log.WriteString(sc.Text() + "\n")
			s.mu.Unlock()
			if m := listening.FindStringSubmatch(sc.Text()); m != nil {
				addr <- m[1]
			}
		}
		s.err = s.cmd.Wait()
		close(s.done)
	}()
	select {
	case s.addr = <-addr:
	case <-s.done:
		t.Fatalf("backy-nbd exited: %v: %s", s.err, s.logText())
	case <-time.After(20 * time.Second):
		s.cmd.Process.Kill()
		t.Fatalf("backy-nbd did not listen within 20s: %s", s.logText())
	}
	t.Cleanup(func() {
		if err := s.stop(); err != nil {
			t.Errorf("backy-nbd: %v", err)
		}
		t.Logf("backy-nbd log:\n%s", s.logText())
	})
	return s
}

// stop sends SIGTERM (unless the process has exited) and waits for a
// clean exit.
func (s *server) stop() error {
	select {
	case <-s.done:
		return s.err
	default:
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
		return s.err
	case <-time.After(15 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
		return fmt.Errorf("did not stop within 15s of SIGTERM")
	}
}

func (s *server) logText() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.String()
}

func (s *server) uri(export string) string { return "nbd://" + s.addr + "/" + export }

// client and mustRun start a client with a time limit (internal/nbdtest).
func client(t testing.TB, name string, args ...string) (string, error) {
	t.Helper()
	return nbdtest.Run(name, args...)
}

func mustRun(t testing.TB, name string, args ...string) string {
	t.Helper()
	return nbdtest.MustRun(t, name, args...)
}

func sameFiles(t *testing.T, a, b string) {
	t.Helper()
	x, err := os.ReadFile(a)
	if err != nil {
		t.Fatal(err)
	}
	y, err := os.ReadFile(b)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(x, y) {
		t.Fatalf("%s and %s differ (%d and %d bytes)", a, b, len(x), len(y))
	}
}

// treeHash digests a repository (clitest.TreeDigest) to prove it unchanged.
func treeHash(t *testing.T, dir string) string {
	t.Helper()
	digest, err := clitest.TreeDigest(dir)
	if err != nil {
		t.Fatal(err)
	}
	return digest
}
