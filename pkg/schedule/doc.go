// Package schedule is the arithmetic behind backy-schedule and
// `backy-store expire`: when a job's tags are due, how runs are spread over
// the day, how failed runs back off, and which revisions a schedule lets go.
//
// Everything here is a pure function of plain values (times, tags, revision
// summaries), so the daemon and the store share one set of rules and tests can
// drive them with a fake clock.
//
// # Slots and spread
//
// A schedule is a set of rules, one per tag: "daily every 1d, keep 9". Each
// tag has slots at fixed points in time: the Unix epoch, plus the job's spread
// reduced modulo the interval, plus whole intervals. The spread is derived
// from the job name (see Spread), so thousands of jobs start at different
// times of day, but every job starts at the same time each day. Because slots
// are anchored at the epoch, a weekly slot falls on a daily slot whenever the
// weekly interval is a multiple of the daily one, and one run carries both
// tags.
//
// # When a tag is due
//
// A tag is due at its first slot after its newest revision (Slot in TagDue).
// If that slot has already passed, because the daemon was down, the job
// failed, or workers were busy, the tag is due at once: missed tags are caught
// up immediately instead of waiting for the next slot, so a job's last
// revision is never much older than its interval. A tag that never ran is due
// at once as well (the original backy waited for the first slot; a job without
// any backup is the most urgent job there is).
//
// A run takes every tag that is due by the time it starts. A run also counts
// for a slot that is only a little later (Grace, at most a tenth of the
// interval), and takes that tag along, so a catch-up run just before a regular
// slot does not lead to a second run minutes later.
//
// The daemon's loop is: compute a Plan, sleep until Plan.At (or a manual
// trigger), compute the Plan again with the new time and run it with its Tags.
//
// # Retention
//
// Expire keeps, per tag, the newest Keep revisions carrying that tag, and also
// every revision younger than Keep*Interval. This is what the original backy
// did: the keep count is a floor, not a cap, so extra manual runs inside the
// window do not push scheduled revisions out early. Older revisions lose that
// tag; a revision left without any tag is removed, except the job's newest
// revision, which is never removed. Tags the schedule does not know (manual
// tags) are never taken away, so a revision carrying one stays until an
// operator removes the tag.
package schedule
