package check

import (
	"fmt"
	"io"
	"slices"
	"strings"
)

// Report is the plugin's output.
type Report struct {
	State   int
	Line    string   // the status line, starting with the state
	Details []string // one line per job with problems
	Perf    []string // performance data, label=value[UOM];warn;crit;min;max
}

// Write prints the report as Nagios expects it: the status line with the
// performance data after "|", then the long text.
func (r *Report) Write(w io.Writer) error {
	var b strings.Builder
	b.WriteString(oneLine(r.Line))
	if len(r.Perf) > 0 {
		b.WriteString(" | ")
		b.WriteString(strings.Join(r.Perf, " "))
	}
	b.WriteByte('\n')
	for _, d := range r.Details {
		b.WriteString(oneLine(d))
		b.WriteByte('\n')
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// oneLine keeps a message on its line, and keeps "|" (which starts the
// performance data) out of the text.
func oneLine(s string) string {
	return strings.NewReplacer("\n", " ", "\r", " ", "|", "/").Replace(s)
}

// Unknowable is the report for a check that could not look at all.
func Unknowable(err error) *Report {
	return &Report{State: Unknown, Line: "UNKNOWN: " + err.Error()}
}

func report(in Input, jobs []Job, daemonState int, daemonMsg string) *Report {
	crit, warn := byState(jobs, Critical), byState(jobs, Warning)
	thaw := slices.DeleteFunc(slices.Clone(crit), func(j Job) bool { return !j.ThawFailed })
	crit = slices.DeleteFunc(crit, func(j Job) bool { return !j.Outside })
	r := &Report{State: daemonState}
	for _, j := range jobs {
		r.State = max(r.State, j.State)
	}
	n := len(jobs) - len(crit)
	within := fmt.Sprintf("%d %s within SLA", n, plural(n, "job", "jobs"))
	var parts []string
	if len(thaw) > 0 {
		parts = append(parts, fmt.Sprintf("THAW FAILED, the guest may still be frozen: %s", names(thaw)))
	}
	switch {
	case len(crit) > 0:
		parts = append(parts, fmt.Sprintf("%d of %d jobs outside SLA: %s", len(crit), len(jobs), names(crit)))
		if daemonMsg != "" {
			parts = append(parts, daemonMsg)
		}
	case daemonMsg != "" && r.State == OK:
		parts = append(parts, within, daemonMsg)
	case daemonMsg != "":
		parts = append(parts, daemonMsg, within)
	default:
		parts = append(parts, within)
	}
	if len(warn) > 0 {
		parts = append(parts, fmt.Sprintf("%d with warnings: %s", len(warn), names(warn)))
	}
	r.Line = StateName(r.State) + ": " + strings.Join(parts, "; ")
	for _, j := range sortedProblems(jobs) {
		r.Details = append(r.Details, fmt.Sprintf("%s: %s: %s", StateName(j.State), j.Name, strings.Join(j.Reasons, "; ")))
	}
	r.Perf = perf(in, jobs, len(crit), len(warn), len(thaw))
	return r
}

func perf(in Input, jobs []Job, crit, warn, thaw int) []string {
	var oldest float64
	crashOnly, crashRuns := 0, 0
	for _, j := range jobs {
		if j.HasTrusted {
			oldest = max(oldest, j.Age.Seconds())
		}
		if j.CrashOnly {
			crashOnly++
			crashRuns = max(crashRuns, j.CrashRuns)
		}
	}
	p := []string{
		fmt.Sprintf("jobs=%d;;;0", len(jobs)),
		fmt.Sprintf("outside_sla=%d;;0;0", crit),
		fmt.Sprintf("warnings=%d;0;;0", warn),
		fmt.Sprintf("oldest_trusted_age=%.0fs;;;0", oldest),
		fmt.Sprintf("crash_consistent_only=%d;0;;0", crashOnly),
		fmt.Sprintf("max_crash_runs=%d;;;0", crashRuns),
		fmt.Sprintf("thaw_failed=%d;;0;0", thaw),
	}
	if in.Status != nil && in.Status.Fleet != nil {
		alive := 0
		for _, m := range in.Status.Fleet.Members {
			if m.Alive {
				alive++
			}
		}
		p = append(p, fmt.Sprintf("fleet_daemons_alive=%d;;;0", alive))
	}
	if in.Status != nil {
		p = append(p, fmt.Sprintf("status_age=%.0fs;;%.0f;0", max(0, in.Now.Sub(in.Status.Written).Seconds()), StaleAfter(in).Seconds()))
	}
	return p
}
