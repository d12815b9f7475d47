// Package jobstatus is what backy-schedule and backy-check agree on about a
// job: the status file (its format, written atomically by the daemon, read
// by the check), the SLA rule, and the summary of a job's repository both
// judge by. Both import it; backy-check imports nothing else of the daemon,
// so it links neither the store, restore, source nor RBD code.
package jobstatus
