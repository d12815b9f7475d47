// Package cephtest gives tests a real, throw-away Ceph cluster: one monitor,
// one memstore OSD, a pool "rbd", on 127.0.0.1, started by
// scripts/ceph-cluster.sh in a temporary directory.
//
// A test package shares one cluster among its tests by running them through
// Main:
//
//	func TestMain(m *testing.M) { os.Exit(cephtest.Main(m)) }
//
//	func TestX(t *testing.T) {
//		conf := cephtest.Start(t) // starts the cluster on first use
//		cephtest.Rbd(t, conf, nil, "create", "--size", "4M", "rbd/x")
//	}
//
// Main stops the cluster when the tests are done. Without Main, Start gives
// each test a cluster of its own, stopped when the test ends. A test process
// that ends any other way (a panic, go test's -timeout, SIGKILL) takes its
// clusters with it all the same: each has a reaper, a small process that
// stops it once the test process is gone.
//
// When the Ceph binaries are missing, Start skips the test - unless the
// environment variable BACKY_REQUIRE_CEPH is set (to anything but ""), in
// which case it fails: CI sets it so that a missing package cannot turn the
// Ceph tests into silent skips. A cluster that fails to start always fails
// the test.
package cephtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// RequireEnv is the environment variable that turns a missing Ceph into a
// test failure.
const RequireEnv = "BACKY_REQUIRE_CEPH"

// Binaries are the programs the cluster and the tests need.
var Binaries = []string{"ceph-mon", "ceph-osd", "monmaptool", "ceph", "rbd", "rados"}

// startTimeout bounds one cluster start; it normally takes 5-10 s.
const startTimeout = 3 * time.Minute

var shared struct {
	sync.Mutex
	inMain  bool
	cluster *cluster
	err     error
}

// cluster is a running cluster and its reaper.
type cluster struct {
	dir, conf string
	reaper    *exec.Cmd
	lifeline  *os.File // the reaper's stdin; it stops the cluster at EOF
}

// TestingM is what Main runs: a *testing.M, or a wrapper around one such
// as testscript's.
type TestingM interface{ Run() int }

// Main runs the package's tests, then stops the shared cluster if Start
// started one. It also stops it on SIGINT and SIGTERM. It returns the exit
// code for os.Exit.
func Main(m TestingM) int {
	shared.Lock()
	shared.inMain = true
	shared.Unlock()

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		s, ok := <-sig
		if !ok {
			return
		}
		stopShared()
		fmt.Fprintf(os.Stderr, "cephtest: %v: cluster stopped\n", s)
		os.Exit(130)
	}()
	defer func() {
		signal.Stop(sig)
		close(sig)
	}()

	code := m.Run()
	if err := stopShared(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

func stopShared() error {
	shared.Lock()
	defer shared.Unlock()
	if shared.cluster == nil {
		return nil
	}
	err := shared.cluster.stop()
	shared.cluster = nil
	return err
}

// Start returns the path of the ceph.conf of a running cluster, starting it
// if needed. It skips or fails t when Ceph is not installed (see the package
// documentation).
func Start(t testing.TB) string {
	t.Helper()
	if missing := Missing(); len(missing) > 0 {
		if os.Getenv(RequireEnv) == "" {
			t.Skipf("cephtest: %s not installed (set %s=1 to fail instead)", strings.Join(missing, ", "), RequireEnv)
		}
		t.Fatalf("cephtest: %s not installed, and %s is set", strings.Join(missing, ", "), RequireEnv)
	}
	shared.Lock()
	defer shared.Unlock()
	if !shared.inMain {
		c, err := start()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := c.stop(); err != nil {
				t.Error(err)
			}
		})
		return c.conf
	}
	conf, err := startShared()
	if err != nil {
		t.Fatal(err)
	}
	return conf
}

// Shared returns the path of the ceph.conf of the shared cluster, starting
// it if needed, for callers without a testing.TB (testscript commands).
// It works only under Main, which stops the cluster, and does not check
// for the binaries (see Missing).
func Shared() (string, error) {
	shared.Lock()
	defer shared.Unlock()
	if !shared.inMain {
		return "", errors.New("cephtest: Shared needs the tests to run through cephtest.Main")
	}
	return startShared()
}

// startShared starts the shared cluster unless it runs (or failed to
// start); shared is locked.
func startShared() (string, error) {
	if shared.cluster == nil && shared.err == nil {
		shared.cluster, shared.err = start()
	}
	if shared.err != nil {
		return "", shared.err
	}
	return shared.cluster.conf, nil
}

// Missing returns the names of the Binaries not found in $PATH.
func Missing() []string {
	var missing []string
	for _, b := range Binaries {
		if _, err := exec.LookPath(b); err != nil {
			missing = append(missing, b)
		}
	}
	return missing
}

// Rbd runs `rbd -c conf args...` with stdin (may be nil) and returns its
// standard output; it fails t if rbd fails.
func Rbd(t testing.TB, conf string, stdin io.Reader, args ...string) []byte {
	t.Helper()
	out, err := RunRbd(conf, stdin, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// RunRbd runs `rbd -c conf args...` with stdin (may be nil) and returns its
// standard output, or an error that includes its standard error.
func RunRbd(conf string, stdin io.Reader, args ...string) ([]byte, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.Command("rbd", append([]string{"-c", conf}, args...)...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), fmt.Errorf("cephtest: rbd %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), nil
}

// Script returns the path of scripts/ceph-cluster.sh, found by walking up
// from the working directory to the module root.
func Script() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("cephtest: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "scripts", "ceph-cluster.sh"), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("cephtest: no go.mod above the working directory")
		}
		dir = parent
	}
}

func start() (*cluster, error) {
	script, err := Script()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "backy-ceph-")
	if err != nil {
		return nil, fmt.Errorf("cephtest: %w", err)
	}
	c := &cluster{dir: dir, conf: filepath.Join(dir, "ceph.conf")}
	// The reaper comes first: a test process killed during the start
	// leaves no daemon behind either.
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("cephtest: %w", err)
	}
	c.reaper = exec.Command("bash", "-c", `read -r _; exec bash "$0" stop "$1"`, script, dir)
	c.reaper.Stdin = r
	// its own session: a Ctrl-C of the tests must not end it before it
	// has done its work
	c.reaper.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = c.reaper.Start()
	r.Close()
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("cephtest: starting the cluster's reaper: %w", err)
	}
	c.lifeline = w
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if _, err := run(ctx, script, "start", dir); err != nil {
		// Keep the logs of a failed start (stop would remove them); the
		// script killed the daemons it had started.
		c.reaper.Process.Kill()
		c.reaper.Wait()
		w.Close()
		return nil, fmt.Errorf("cephtest: starting cluster (logs in %s): %w", filepath.Join(dir, "log"), err)
	}
	return c, nil
}

// stop stops the cluster and ends its reaper; should the stop fail, the
// reaper tries once more.
func (c *cluster) stop() error {
	script, err := Script()
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, err = run(ctx, script, "stop", c.dir); err != nil {
			err = fmt.Errorf("cephtest: stopping cluster: %w", err)
		}
	}
	if err == nil {
		c.reaper.Process.Kill()
	}
	c.lifeline.Close()
	c.reaper.Wait()
	return err
}

func run(ctx context.Context, script string, args ...string) ([]byte, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "bash", append([]string{script}, args...)...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s %s: %w: %s", filepath.Base(script), args[0], err, strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), nil
}
