package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParse checks that no input makes Parse panic, that every rejection is
// an ErrInvalid with the input's name, and that what it accepts is coherent.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*/*.toml")
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("[jobs.a]\nsource.type = \"file\"\nsource.path = \"/x\"\nschedule = \"s\"\n[schedules.s.d]\ninterval=\"1m\"\nkeep=1"))
	f.Add([]byte("a.\"b,c\".\"\" = 1\n[\"-\"]\nX = 1\nx = 2"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("fuzz", data)
		if err != nil {
			if !errors.Is(err, ErrInvalid) || !strings.HasPrefix(err.Error(), "config: fuzz") || strings.Contains(err.Error(), "\n") {
				t.Fatalf("bad error %q", err)
			}
			return
		}
		if !filepath.IsAbs(c.Global.BaseDir) || !filepath.IsAbs(c.Global.StatusFile) || c.Global.WorkerLimit < 1 {
			t.Fatalf("accepted global %+v", c.Global)
		}
		for name, j := range c.Jobs {
			if _, ok := c.Schedules[j.ScheduleName]; !ok || j.Schedule.Len() == 0 {
				t.Fatalf("job %q has schedule %q", name, j.ScheduleName)
			}
			if checkName(name) != nil || !filepath.IsAbs(j.Directory) && !validRados(j.Directory) || j.Source.Type == "" {
				t.Fatalf("accepted job %+v", j)
			}
		}
	})
}
