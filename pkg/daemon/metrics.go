package daemon

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"path/filepath"
	"syscall"
	"time"

	"github.com/backy/backy/pkg/config"
	"github.com/backy/backy/pkg/exitcode"
	"github.com/backy/backy/pkg/jobstatus"
	"github.com/backy/backy/pkg/repo"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// The Prometheus endpoint (metrics-listen in backy.conf; docs/metrics.md).
// Its collector reads the daemon's state on the loop goroutine at each
// scrape, as the console does; it keeps no state of its own.

// metricsServer serves /metrics; nil when metrics-listen is unset.
type metricsServer struct {
	l   net.Listener
	srv *http.Server
}

// openMetrics listens on addr (HOST:PORT) before the daemon starts
// anything, so that a port in use stops it at start.
func openMetrics(d *daemon, addr string) (*metricsServer, error) {
	if addr == "" {
		return nil, nil
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return nil, exitcode.With(exitcode.Busy, fmt.Errorf("daemon: metrics-listen %s: the port is in use by another program: %w", addr, err))
		}
		return nil, fmt.Errorf("daemon: metrics-listen %s: %w", addr, err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(&collector{d: d}, collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewGoCollector())
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprintln(w, "backy-schedule: metrics at /metrics")
	})
	return &metricsServer{l: l, srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}}, nil
}

func (m *metricsServer) where() string {
	if m == nil {
		return "off"
	}
	return "http://" + m.l.Addr().String() + "/metrics"
}

func (m *metricsServer) serve(log *Logger) {
	if m == nil {
		return
	}
	go func() {
		if err := m.srv.Serve(m.l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Info(fmt.Sprintf("metrics: %v", err))
		}
	}()
}

func (m *metricsServer) close() {
	if m == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if m.srv.Shutdown(ctx) != nil {
		m.srv.Close()
	}
}

// jobLabel is the label naming a backy job; "job" is Prometheus's own (the
// scrape job) and would be renamed on the way in.
const jobLabel = "backy_job"

func jobDesc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("backy_job_"+name, help, append([]string{jobLabel}, labels...), nil)
}

var (
	mLastSuccess  = jobDesc("last_success_timestamp_seconds", "When the job's last successful run ended (Unix time); absent before the first.")
	mLastRun      = jobDesc("last_run_timestamp_seconds", "When the job's last finished run started (Unix time); absent before the first.")
	mLastDuration = jobDesc("last_run_duration_seconds", "How long the job's last finished run took.")
	mLastOK       = jobDesc("last_run_success", "1 if the job's last finished run succeeded, 0 if it failed or was interrupted.")
	mFailures     = jobDesc("consecutive_failures", "Failed runs of the job in a row (0 after a success); drives its backoff.")
	mSLA          = jobDesc("sla_state", "The job's SLA state: 1 for the state it is in (ok: newest trusted revision young enough; outside: too old; none: no trusted revision), 0 for the others.", "state")
	mRevisions    = jobDesc("revisions", "Revisions in the job's repository, distrusted ones included.")
	mDistrusted   = jobDesc("distrusted_revisions", "Distrusted revisions in the job's repository.")
	mTrustedAge   = jobDesc("newest_trusted_revision_age_seconds", "Age of the newest trusted (or verified) revision; absent when there is none.")
	mRead         = jobDesc("last_run_read_bytes", "Bytes of extent stream the last successful backup read (what crossed the pipe).")
	mWritten      = jobDesc("last_run_written_bytes", "Bytes the last successful backup wrote into the repository (compressed new chunks).")
	mRepoSize     = jobDesc("repository_size_bytes", "Disk space the job's repository takes, measured after its last run.")
	mRunning      = jobDesc("running", "1 while a run of the job is in progress.")
	mThawFailed   = jobDesc("thaw_failed", "1 when a run of the job ended in THAW FAILED (the guest may still be frozen) and none succeeded since.")
	mCrashRuns    = jobDesc("crash_consistent_revisions", "How many of the job's newest revisions in a row are only crash-consistent (0 when the newest was frozen or made by an agent).")

	mBusy  = prometheus.NewDesc("backy_workers_busy", "Runs in progress.", nil, nil)
	mLimit = prometheus.NewDesc("backy_workers_limit", "worker-limit: the most runs at once.", nil, nil)
	mQueue = prometheus.NewDesc("backy_queue_length", "Jobs that are due and wait for a free worker.", nil, nil)
	mJobs  = prometheus.NewDesc("backy_jobs", "Jobs configured.", nil, nil)

	mOwner = jobDesc("owner", "In a fleet: 1 for the member that runs the job (as this daemon last heard).", "owner")
	mAlive = prometheus.NewDesc("backy_fleet_member_alive", "In a fleet: 1 for each member holding its membership lease, 0 for one this daemon lists but the cluster does not.", []string{"member"}, nil)
)

// collector turns the daemon's state into metrics at each scrape.
type collector struct{ d *daemon }

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{mLastSuccess, mLastRun, mLastDuration, mLastOK, mFailures, mSLA,
		mRevisions, mDistrusted, mTrustedAge, mRead, mWritten, mRepoSize, mRunning, mThawFailed, mCrashRuns, mBusy, mLimit, mQueue, mJobs, mOwner, mAlive} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	var (
		jobs    map[string]jobstatus.Job
		running int
		limit   int
		now     = time.Now()
	)
	var fleet *jobstatus.Fleet
	if !c.d.call(func() {
		st := c.d.fleetView(now) // every job of the fleet when in one
		jobs, running, limit, fleet = st.Jobs, c.d.s.running, c.d.cfg.Global.WorkerLimit, st.Fleet
	}) {
		return // the daemon has stopped
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	queued := 0
	for name, js := range jobs {
		if js.Queued {
			queued++
		}
		if !js.LastSuccess.IsZero() {
			gauge(mLastSuccess, unixSeconds(js.LastSuccess), name)
		}
		if !js.LastRun.IsZero() && !js.LastEnd.IsZero() {
			gauge(mLastRun, unixSeconds(js.LastRun), name)
			gauge(mLastDuration, js.LastEnd.Sub(js.LastRun).Seconds(), name)
			gauge(mLastOK, boolValue(js.LastResult == "ok"), name)
		}
		gauge(mFailures, float64(js.Failures), name)
		for _, state := range []string{jobstatus.SLAOK, jobstatus.SLAOutside, jobstatus.SLANone} {
			gauge(mSLA, boolValue(js.SLA == state), name, state)
		}
		gauge(mRevisions, float64(js.Revisions), name)
		gauge(mDistrusted, float64(js.Distrusted), name)
		if !js.NewestTrusted.IsZero() {
			gauge(mTrustedAge, now.Sub(js.NewestTrusted).Seconds(), name)
		}
		if js.LastReadBytes != nil {
			gauge(mRead, float64(*js.LastReadBytes), name)
		}
		if js.LastWrittenBytes != nil {
			gauge(mWritten, float64(*js.LastWrittenBytes), name)
		}
		if js.RepositoryBytes > 0 {
			gauge(mRepoSize, float64(js.RepositoryBytes), name)
		}
		gauge(mRunning, boolValue(js.Running), name)
		gauge(mThawFailed, boolValue(!js.ThawFailed.IsZero()), name)
		gauge(mCrashRuns, float64(js.CrashRuns), name)
		if js.Owner != "" {
			gauge(mOwner, 1, name, js.Owner)
		}
	}
	if fleet != nil {
		for _, m := range fleet.Members {
			gauge(mAlive, boolValue(m.Alive), m.Name)
		}
	}
	gauge(mBusy, float64(running))
	gauge(mLimit, float64(limit))
	gauge(mQueue, float64(queued))
	gauge(mJobs, float64(len(jobs)))
}

func unixSeconds(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// runFigures are what a finished run leaves for the metrics: the stream
// bytes its backup read and the bytes it wrote (from the new revision's
// metadata), and the repository's disk usage.
type runFigures struct {
	revision      bool
	read, written int64
	repoBytes     int64
}

// measureRun reads the figures of a run that stored revision id (none when
// empty) into the job's repository. What cannot be read stays zero.
func measureRun(j config.Job, id string) runFigures {
	dir := j.Directory
	var f runFigures
	if id != "" {
		if r, err := repo.Open(dir, repo.WithCeph(j.Ceph)); err == nil {
			if rev, err := r.Find(id); err == nil {
				f.revision, f.read, f.written = true, rev.Stats.StreamBytes, rev.Stats.BytesWritten
			}
			r.Close()
		}
	}
	f.repoBytes = diskUsage(dir)
	return f
}

func (f runFigures) apply(j *jobState) {
	if f.revision {
		j.lastRead, j.lastWritten, j.measured = f.read, f.written, true
	}
	if f.repoBytes > 0 {
		j.repoBytes = f.repoBytes
	}
}

// diskUsage is what du says of dir: the blocks its files and directories
// take, in bytes.
func diskUsage(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, e fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if info, err := e.Info(); err == nil {
			if st, ok := info.Sys().(*syscall.Stat_t); ok {
				n += st.Blocks * 512
			}
		}
		return nil
	})
	return n
}
