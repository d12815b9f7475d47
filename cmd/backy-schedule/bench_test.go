package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/backy/backy/internal/clitest"
	"github.com/backy/backy/pkg/daemon/daemontest"
	"github.com/backy/backy/pkg/jobstatus"
)

// BenchmarkIdle10000Jobs starts the real daemon, built as it ships, with
// 10,000 configured jobs whose repositories each hold a revision taken
// just now, so that runs come one by one as their slots arrive, and
// measures over BACKY_BENCH_IDLE (default 30s) the CPU time the daemon
// itself uses (/proc/PID/stat utime+stime; the backups it starts are
// children and not counted) and its peak memory (VmHWM). Targets: near 0%
// CPU, under 200 MiB.
func BenchmarkIdle10000Jobs(b *testing.B) {
	const jobs = 10000
	window := 30 * time.Second
	if v := os.Getenv("BACKY_BENCH_IDLE"); v != "" {
		var err error
		if window, err = time.ParseDuration(v); err != nil {
			b.Fatal(err)
		}
	}
	dir := b.TempDir()
	bin := filepath.Join(dir, "backy-schedule")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	start := time.Now()
	s, err := daemontest.Jobs(filepath.Join(dir, "setup"), jobs, freePort(b), time.Now())
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("setup of %d repositories: %s", jobs, time.Since(start).Round(time.Millisecond))

	for b.Loop() {
		started := time.Now()
		d := daemontest.Start(b, bin, append(os.Environ(), "PATH="+clitest.BinDir+string(os.PathListSeparator)+os.Getenv("PATH")),
			[]string{"-c", s.Config, "-l", filepath.Join(dir, "daemon.log")})
		status := filepath.Join(s.Base, "status")
		for {
			if st, err := jobstatus.Read(status); err == nil && len(st.Jobs) == jobs && st.Written.After(started) {
				break
			}
			if time.Since(started) > 5*time.Minute {
				b.Fatalf("no status after 5 minutes: %s", d.Stderr())
			}
			time.Sleep(100 * time.Millisecond)
		}
		ready := time.Since(started)
		cpu0 := cpuTicks(b, d.Pid())
		time.Sleep(window)
		cpu1 := cpuTicks(b, d.Pid())
		hwm := vmHWM(b, d.Pid())
		d.Signal(syscall.SIGTERM)
		d.Exit(time.Minute)
		log, _ := os.ReadFile(filepath.Join(dir, "daemon.log"))
		runs := strings.Count(string(log), "run started")

		const hz = 100 // USER_HZ, the unit of /proc/PID/stat times on Linux
		cpu := float64(cpu1-cpu0) / hz / window.Seconds() * 100
		b.ReportMetric(ready.Seconds(), "start-s")
		b.ReportMetric(cpu, "idle-cpu%")
		b.ReportMetric(float64(hwm)/1024, "VmHWM-MiB")
		b.ReportMetric(float64(runs), "runs")
		b.Logf("%d jobs: ready in %s, %.2f%% CPU over %s (%d ticks), VmHWM %.1f MiB, %d runs started",
			jobs, ready.Round(time.Millisecond), cpu, window, cpu1-cpu0, float64(hwm)/1024, runs)
		if cpu > 1 || hwm > 200*1024 {
			b.Errorf("targets: under 1%% CPU and 200 MiB; got %.2f%% and %.1f MiB", cpu, float64(hwm)/1024)
		}
	}
}

// cpuTicks is utime+stime of a process, in clock ticks.
func cpuTicks(b *testing.B, pid int) int64 {
	f, err := procStat(pid)
	if err != nil {
		b.Fatal(err)
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return u + s
}

// vmHWM is the peak resident set size of a process, in KiB.
func vmHWM(b *testing.B, pid int) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	b.Fatal("no VmHWM")
	return 0
}
