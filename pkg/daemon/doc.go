// Package daemon is backy-schedule: it runs every configured job on its
// schedule, writes the status file backy-check reads, and serves the
// console.
//
// # Shape
//
// One goroutine, the loop, owns all job state. It sleeps until the earliest
// due job, a finished run, a console request, a signal or the next status
// write, so ten thousand idle jobs cost one timer and nothing else. The
// decisions themselves (which job starts, with which tags, what a finished
// run does to the backoff) live in the scheduler type, a plain value that
// tests drive with made-up times.
//
// # Runs are pipelines a person could type
//
// A run is the same commands an operator would type, started as child
// processes: backy-extract (or the job's own command) piped into
// backy-store, then a verification against a sample of the source,
// backy-store expire and backy-store purge. The exit status of every process
// counts, on both sides of every pipe; there is no in-process shortcut, so
// whatever the daemon does can be reproduced by hand from the job log, which
// records each command line. Each child runs in a process group of its own,
// so an interrupt at the daemon's terminal does not reach it, and stopping a
// run reaches every process a command source may have started.
//
// # State that survives
//
// The repositories are the truth about revisions: the daemon reads each
// job's revisions at start, after each of its runs, and on reload. The
// backoff of a failing job is kept in the status file and read back at
// start, so restarting the daemon does not restart a failing job's series
// at two minutes.
package daemon
