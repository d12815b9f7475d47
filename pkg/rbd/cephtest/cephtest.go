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
// each test a cluster of its own, stopped when the test ends.
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
	inMain bool
	dir    string
	conf   string
	err    error
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
	if shared.dir == "" {
		return nil
	}
	err := stop(shared.dir)
	shared.dir, shared.conf = "", ""
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
		dir, conf, err := start()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := stop(dir); err != nil {
				t.Error(err)
			}
		})
		return conf
	}
	if shared.conf == "" && shared.err == nil {
		shared.dir, shared.conf, shared.err = start()
	}
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	return shared.conf
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
	if shared.conf == "" && shared.err == nil {
		shared.dir, shared.conf, shared.err = start()
	}
	return shared.conf, shared.err
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

func start() (dir, conf string, err error) {
	script, err := Script()
	if err != nil {
		return "", "", err
	}
	dir, err = os.MkdirTemp("", "backy-ceph-")
	if err != nil {
		return "", "", fmt.Errorf("cephtest: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if _, err := run(ctx, script, "start", dir); err != nil {
		// Keep the logs of a failed start; stop would remove them.
		return "", "", fmt.Errorf("cephtest: starting cluster (logs in %s): %w", filepath.Join(dir, "log"), err)
	}
	return dir, filepath.Join(dir, "ceph.conf"), nil
}

func stop(dir string) error {
	script, err := Script()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := run(ctx, script, "stop", dir); err != nil {
		return fmt.Errorf("cephtest: stopping cluster: %w", err)
	}
	return nil
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
