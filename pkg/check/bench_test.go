package check

import (
	"os"
	"testing"
	"time"

	"github.com/backy/backy/pkg/daemon/daemontest"
	"github.com/backy/backy/pkg/jobstatus"
)

// BenchmarkCheck10000Jobs judges 10,000 jobs, each a real repository with
// one revision written by pkg/repo, and a status file of a running daemon.
// Target: under 5 s per check. BACKY_BENCH_DIR keeps the (slow to write)
// repositories between runs, and lets the backy-check binary be timed on
// the same tree.
func BenchmarkCheck10000Jobs(b *testing.B) {
	dir := os.Getenv("BACKY_BENCH_DIR")
	if dir == "" {
		dir = b.TempDir()
	}
	setupStart := time.Now()
	s, err := daemontest.Jobs(dir, 10000, 0, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("setup of %d repositories: %s", s.Jobs, time.Since(setupStart).Round(time.Millisecond))
	st := &jobstatus.Status{Format: jobstatus.Format, Written: time.Now().Add(time.Hour), StatusInterval: 30, Jobs: map[string]jobstatus.Job{}}
	for i := range s.Jobs {
		st.Jobs[daemontest.JobName(i)] = jobstatus.Job{SLA: jobstatus.SLAOK}
	}
	if err := jobstatus.Write(s.Base+"/status", st); err != nil {
		b.Fatal(err)
	}
	var worst time.Duration
	for b.Loop() {
		start := time.Now()
		r := Check(s.Config, time.Now())
		worst = max(worst, time.Since(start))
		if len(r.Details) != 0 && r.State != Critical {
			b.Fatalf("%s\n%v", r.Line, r.Details[:1])
		}
	}
	b.ReportMetric(worst.Seconds(), "worst-s")
	if worst > 5*time.Second {
		b.Errorf("a check of %d jobs took %s, target 5s", s.Jobs, worst)
	}
}
