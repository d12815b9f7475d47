package main

// The Prometheus endpoint, scraped with a real HTTP client from the real
// daemon running real jobs; the values are checked against the repositories,
// the revisions' metadata and the status file.

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/backy/backy/pkg/jobstatus"
	"github.com/backy/backy/pkg/repo"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

const metricsConf = `[global]
base-dir = "%[1]s/base"
worker-limit = 1
status-interval = "1s"
console-addresses = []
metrics-listen = "%[2]d"
backoff-initial = "1h"
backoff-max = "1h"

[schedules.hourly]
hourly = { interval = "1h", keep = 2 }

[jobs.vm1]
schedule = "hourly"
source = { type = "file", path = "%[1]s/vm1.img" }

[jobs.slow]
schedule = "hourly"
source = { type = "command", command = "sleep 3; exit 1" }
`

// scrape fetches /metrics and parses it.
func scrape(t *testing.T, port int) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", port))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parsing /metrics: %v", err)
	}
	return fams
}

// value returns the gauge of family name whose labels are labels (name=value
// pairs), and whether there is one.
func value(fams map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.Metric {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, l := range m.Label {
				if l.GetName() == labels[i] && l.GetValue() == labels[i+1] {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		return m.GetGauge().GetValue(), true
	}
	return 0, false
}

func TestMetricsEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the daemon for some seconds")
	}
	dir := t.TempDir()
	port := freePort(t)
	conf := filepath.Join(dir, "backy.conf")
	os.WriteFile(conf, []byte(fmt.Sprintf(metricsConf, dir, port)), 0o644)
	image(t, filepath.Join(dir, "vm1.img"))
	vm1 := filepath.Join(dir, "base", "vm1")
	d := startDaemon(t, "-c", conf, "-l", filepath.Join(dir, "daemon.log"))

	get := func(fams map[string]*dto.MetricFamily, name, job string, labels ...string) float64 {
		t.Helper()
		v, ok := value(fams, name, append([]string{"backy_job", job}, labels...)...)
		if !ok {
			t.Fatalf("no %s for %s %v", name, job, labels)
		}
		return v
	}
	eventually(t, 30*time.Second, "the endpoint", func() (bool, string) {
		_, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", port))
		return err == nil, fmt.Sprint(err)
	})

	// Two jobs are due at once and one worker runs them: one runs, the
	// other waits (the failing job sleeps 3 s, so this is seen).
	eventually(t, 30*time.Second, "one job running, one queued", func() (bool, string) {
		f := scrape(t, port)
		busy, _ := value(f, "backy_workers_busy")
		queue, _ := value(f, "backy_queue_length")
		limit, _ := value(f, "backy_workers_limit")
		running := get(f, "backy_job_running", "vm1") + get(f, "backy_job_running", "slow")
		return busy == 1 && queue == 1 && limit == 1 && running == 1, fmt.Sprintf("busy %v queue %v running %v", busy, queue, running)
	})

	// Both runs end: vm1 with a revision, slow with its first failure (the
	// next try is an hour away).
	status := filepath.Join(dir, "base", "status")
	var st *jobstatus.Status
	eventually(t, time.Minute, "both runs finished", func() (bool, string) {
		var err error
		st, err = jobstatus.Read(status)
		if err != nil {
			return false, err.Error()
		}
		return st.Running == 0 && st.Jobs["vm1"].LastResult == "ok" && st.Jobs["slow"].LastResult == "failed", fmt.Sprintf("%+v", st.Jobs)
	})
	f := scrape(t, port)
	now := time.Now()

	if v, _ := value(f, "backy_jobs"); v != 2 {
		t.Errorf("backy_jobs = %v, want 2", v)
	}
	if v, _ := value(f, "backy_workers_busy"); v != 0 {
		t.Errorf("backy_workers_busy = %v after the runs", v)
	}
	if v, _ := value(f, "backy_queue_length"); v != 0 {
		t.Errorf("backy_queue_length = %v after the runs", v)
	}

	// vm1: against its repository and the status file.
	js := st.Jobs["vm1"]
	r, err := repo.Open(vm1)
	if err != nil {
		t.Fatal(err)
	}
	revs, err := r.Revisions()
	if err != nil || len(revs) != 1 {
		t.Fatalf("vm1 revisions: %v %v", revs, err)
	}
	rev := revs[0]
	r.Close()
	for _, c := range []struct {
		name string
		want float64
	}{
		{"backy_job_revisions", 1},
		{"backy_job_distrusted_revisions", 0},
		{"backy_job_last_run_success", 1},
		{"backy_job_consecutive_failures", 0},
		{"backy_job_running", 0},
		{"backy_job_last_success_timestamp_seconds", float64(js.LastSuccess.UnixNano()) / 1e9},
		{"backy_job_last_run_timestamp_seconds", float64(js.LastRun.UnixNano()) / 1e9},
		{"backy_job_last_run_duration_seconds", js.LastEnd.Sub(js.LastRun).Seconds()},
		{"backy_job_last_run_read_bytes", float64(rev.Stats.StreamBytes)},
		{"backy_job_last_run_written_bytes", float64(rev.Stats.BytesWritten)},
		{"backy_job_repository_size_bytes", float64(du(t, vm1))},
	} {
		if got := get(f, c.name, "vm1"); math.Abs(got-c.want) > 1e-3 {
			t.Errorf("%s{vm1} = %v, want %v", c.name, got, c.want)
		}
	}
	// The image is 1 MiB of random bytes and 5 MiB of zeros: one 4 MiB data
	// record crossed the pipe, about 1 MiB was written.
	if read := rev.Stats.StreamBytes; read < 4<<20 || read > 4<<20+64<<10 {
		t.Errorf("stream bytes %d, want 4 MiB and a little", read)
	}
	if written := rev.Stats.BytesWritten; written < 1<<20 || written > 1<<20+64<<10 {
		t.Errorf("bytes written %d, want 1 MiB and a little", written)
	}
	if age := get(f, "backy_job_newest_trusted_revision_age_seconds", "vm1"); age < 0 || age > now.Sub(rev.Time).Seconds()+1 {
		t.Errorf("newest trusted age %v, revision taken %v ago", age, now.Sub(rev.Time))
	}
	for state, want := range map[string]float64{"ok": 1, "outside": 0, "none": 0} {
		if got := get(f, "backy_job_sla_state", "vm1", "state", state); got != want {
			t.Errorf("backy_job_sla_state{vm1,%s} = %v, want %v", state, got, want)
		}
	}

	// slow: failed once, no revision, no SLA.
	for _, c := range []struct {
		name string
		want float64
	}{
		{"backy_job_revisions", 0},
		{"backy_job_last_run_success", 0},
		{"backy_job_consecutive_failures", 1},
	} {
		if got := get(f, c.name, "slow"); got != c.want {
			t.Errorf("%s{slow} = %v, want %v", c.name, got, c.want)
		}
	}
	if got := get(f, "backy_job_last_run_duration_seconds", "slow"); got < 3 {
		t.Errorf("last run of slow took %vs, but it sleeps 3 s", got)
	}
	if got := get(f, "backy_job_sla_state", "slow", "state", "none"); got != 1 {
		t.Errorf("backy_job_sla_state{slow,none} = %v, want 1", got)
	}
	for _, name := range []string{"backy_job_last_success_timestamp_seconds", "backy_job_newest_trusted_revision_age_seconds", "backy_job_last_run_read_bytes"} {
		if v, ok := value(f, name, "backy_job", "slow"); ok {
			t.Errorf("%s{slow} = %v, want none: the job never succeeded", name, v)
		}
	}
	// The process metrics of client_golang are there too.
	if _, ok := value(f, "process_start_time_seconds"); !ok {
		t.Error("no process_start_time_seconds")
	}

	d.Signal(syscall.SIGTERM)
	if code := d.Exit(30 * time.Second); code != 0 {
		t.Errorf("exit %d after SIGTERM", code)
	}
}

// du is what du(1) says dir takes, in bytes.
func du(t *testing.T, dir string) int64 {
	t.Helper()
	out, err := exec.Command("du", "-s", "-B1", dir).Output()
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.ParseInt(strings.Fields(string(out))[0], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// A port that is taken stops the daemon at start: exit 5 and a message
// naming the address; no job runs, no status file is written.
func TestMetricsPortTaken(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	dir := t.TempDir()
	conf := filepath.Join(dir, "backy.conf")
	os.WriteFile(conf, []byte(fmt.Sprintf(metricsConf, dir, port)), 0o644)
	image(t, filepath.Join(dir, "vm1.img"))
	cmd := exec.Command("backy-schedule", "-c", conf)
	cmd.Env = env()
	msg, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	want := fmt.Sprintf("backy-schedule: error: daemon: metrics-listen 127.0.0.1:%[1]d: the port is in use by another program: listen tcp 127.0.0.1:%[1]d: bind: address already in use\n", port)
	if !errors.As(err, &ee) || ee.ExitCode() != 5 || !strings.HasSuffix(string(msg), "\n"+want) {
		t.Errorf("got %v\n%s\nwant exit 5 and\n%s", err, msg, want)
	}
	for _, p := range []string{"base/status", "base/vm1"} {
		if _, err := os.Stat(filepath.Join(dir, p)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s exists after a refused start: %v", p, err)
		}
	}
}
