// Package check is backy-check, the Nagios/Icinga plugin: it tells
// monitoring whether every configured job is within its SLA, from the
// repositories themselves and the daemon's status file.
//
// A job is within its SLA when its newest trusted (trusted or verified)
// revision is younger than 1.5 times the job's shortest interval
// (jobstatus.SLALimit). The repositories are the evidence, not the daemon's
// opinion: a job whose daemon reports success but whose repository holds no
// recent trusted revision is outside its SLA. A job without any trusted
// revision is always outside it, so a new or broken job is never silently
// OK (the original backy reported a job without revisions as fine).
//
// The status file adds what repositories cannot say: whether a daemon is
// running at all (a missing, stale or "stopped" status file is CRITICAL,
// since nothing will make the next backup), and whether runs are failing
// while the last good revision is still young enough (WARNING). Distrusted
// revisions and damage found by verification are WARNINGs too: a restore
// point is gone, though a newer one may still be fine.
//
// Output follows the Nagios plugin guidelines: one status line with
// performance data after "|", the jobs with problems on the lines below,
// exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (a configuration that cannot
// be read).
package check
