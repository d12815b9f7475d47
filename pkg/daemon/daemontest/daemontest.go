// Package daemontest builds the large test setups that the benchmarks of
// backy-schedule and backy-check share: a configuration with many jobs and
// a small real repository per job.
package daemontest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/backy/backy/pkg/repo"
)

// Setup describes a generated configuration.
type Setup struct {
	Dir    string // holds backy.conf, base/ and source.img
	Config string // the configuration file
	Base   string // base-dir
	Jobs   int
}

// Jobs writes a configuration with n jobs (job00000, job00001, ...) under
// dir, all on a daily schedule backing up one small image file, the console
// on port (0: off), and gives each job a repository holding one trusted
// revision with every tag, taken at revTime, written with pkg/repo as
// backy-store would. A setup already in dir with n jobs is reused, since
// writing thousands of repositories takes a while.
func Jobs(dir string, n int, port int, revTime time.Time) (*Setup, error) {
	s := &Setup{Dir: dir, Config: filepath.Join(dir, "backy.conf"), Base: filepath.Join(dir, "base"), Jobs: n}
	marker := filepath.Join(dir, fmt.Sprintf("complete-%d", n))
	if err := writeConfig(s, port); err != nil {
		return nil, err
	}
	if _, err := os.Stat(marker); err == nil {
		return s, nil
	}
	img := filepath.Join(dir, "source.img")
	if err := os.WriteFile(img, make([]byte, 1<<20), 0o644); err != nil {
		return nil, err
	}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	next := make(chan int)
	for range 8 {
		wg.Go(func() {
			for i := range next {
				if err := oneRepo(filepath.Join(s.Base, JobName(i)), revTime); err != nil {
					errs <- err
				}
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return nil, err
	}
	return s, os.WriteFile(marker, nil, 0o644)
}

// JobName is the name of the i-th job of a setup.
func JobName(i int) string { return fmt.Sprintf("job%05d", i) }

func writeConfig(s *Setup, port int) error {
	var b strings.Builder
	console := "console-addresses = []"
	if port > 0 {
		console = fmt.Sprintf("console-port = %d", port)
	}
	fmt.Fprintf(&b, "[global]\nbase-dir = %q\nworker-limit = 4\n%s\n\n", s.Base, console)
	b.WriteString("[schedules.default]\ndaily = { interval = \"1d\", keep = 9 }\nweekly = { interval = \"7d\", keep = 5 }\n\n")
	img := filepath.Join(s.Dir, "source.img")
	for i := range s.Jobs {
		fmt.Fprintf(&b, "[jobs.%s]\nschedule = \"default\"\nsource = { type = \"file\", path = %q }\n", JobName(i), img)
	}
	if err := os.MkdirAll(s.Base, 0o755); err != nil {
		return err
	}
	return os.WriteFile(s.Config, []byte(b.String()), 0o644)
}

// oneRepo makes a repository with one 1 MiB all-zero revision.
func oneRepo(dir string, at time.Time) error {
	r, err := repo.OpenOrCreate(dir)
	if err != nil {
		return err
	}
	revs, err := r.Revisions()
	if err != nil || len(revs) > 0 {
		return err
	}
	rev := &repo.Revision{ID: repo.NewRevisionID(), Time: at.UTC(), Kind: "full", Tags: []string{"daily", "weekly"},
		Trust: repo.Trusted, Source: "file:source.img", Size: 1 << 20}
	return r.Commit(rev, repo.NewIndex(rev.Size))
}
