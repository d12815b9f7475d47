package config

import (
	"errors"
	"fmt"
	"os"

	"github.com/backy/backy/pkg/fsperm"
)

// CheckSource reports whether a file source is there: an existing regular
// file or block device. Other source types are not checked; whether an RBD
// image or a command works only shows when it runs. The error wraps
// ErrSourceMissing and, if the path is missing, fs.ErrNotExist.
func (j Job) CheckSource() error {
	if j.Source.Type != SourceFile {
		return nil
	}
	fi, err := os.Stat(j.Source.Path)
	if err != nil {
		return fmt.Errorf("%w: job %q: %w", ErrSourceMissing, j.Name, err)
	}
	mode := fi.Mode()
	if mode.IsRegular() || fsperm.IsBlockDevice(mode) {
		return nil
	}
	return fmt.Errorf("%w: job %q: %s is neither a file nor a block device", ErrSourceMissing, j.Name, j.Source.Path)
}

// CheckSources checks every job's source, in job name order, and returns the
// problems joined, nil if there are none. It is separate from Parse so the
// daemon can decide whether a missing source stops it or only that job.
func (c *Config) CheckSources() error {
	var errs []error
	for _, name := range c.JobNames() {
		if err := c.Jobs[name].CheckSource(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
