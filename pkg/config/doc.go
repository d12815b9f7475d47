// Package config reads the configuration of backy-schedule, by default
// /etc/backy.conf: global settings, named schedules (per-tag interval and
// keep count) and jobs (a source, a schedule, a repository directory).
//
// The file is TOML. Parse checks it completely before anything runs: unknown
// keys, values of the wrong type or range, bad intervals, jobs naming a
// schedule that does not exist, job names that are not safe as directory
// names and tables defined twice are all errors, each naming the file, the
// line and the key, so an operator can go straight to the mistake. Whether a
// job's source is actually there is a separate question (Config.CheckSources),
// because the daemon may start with a source that appears later.
//
// The man page man/backy.conf.5.md documents every key; a test keeps the two
// in step.
package config
