package config

import (
	"cmp"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"time"

	"github.com/backy/backy/pkg/cephconn"
	"github.com/backy/backy/pkg/schedule"
)

// DefaultPath is where backy-schedule looks for its configuration.
const DefaultPath = "/etc/backy.conf"

// StateDir is the daemon's own directory below the base directory: its
// lock file, the job logs and the console socket. The leading dot keeps it
// apart from job names, which start with a letter or digit.
const StateDir = ".backy-schedule"

// Defaults of the [global] table.
const (
	DefaultBaseDir        = "/srv/backy"
	DefaultWorkerLimit    = 1
	DefaultStatusInterval = 30 * time.Second
	DefaultConsolePort    = 6023
	DefaultVerifySample   = 1.0 // percent
)

// DefaultConsoleAddresses keeps the console on loopback unless told otherwise.
var DefaultConsoleAddresses = []string{"127.0.0.1"}

// maxFileSize bounds what Load reads; a configuration is a few hundred
// kilobytes even with thousands of jobs.
const maxFileSize = 64 << 20

// Config is a parsed and validated configuration.
type Config struct {
	File      string // where it was read from
	Global    Global
	Schedules map[string]schedule.Schedule
	Jobs      map[string]Job
}

// Global holds the daemon-wide settings.
type Global struct {
	BaseDir          string        // absolute; jobs' repositories live below it
	RadosPool        string        // if set, jobs' repositories default to rados:POOL/NAME
	WorkerLimit      int           // jobs running at once
	StatusFile       string        // absolute
	StatusInterval   time.Duration // how often the status file is rewritten
	ConsoleAddresses []string      // IP addresses; empty means no TCP console
	ConsolePort      int
	ConsoleSocket    string // absolute path of the console's Unix socket; empty means none
	Backoff          schedule.Backoff
	// MetricsListen is HOST:PORT of the Prometheus endpoint; empty means
	// none. A bare port (or ":PORT") is on 127.0.0.1.
	MetricsListen string
	// Ceph is how jobs reach their Ceph cluster (ceph-conf, ceph-user)
	// unless a job says otherwise; the zero value is Ceph's defaults.
	Ceph cephconn.Options

	// Fleet names the fleet of daemons sharing the jobs (docs/fleet.md);
	// empty means this daemon runs every job itself.
	Fleet       string
	FleetMember string        // this daemon's name in the fleet; default: the host name
	FleetLease  time.Duration // of every fleet lease
	// FleetRunLimit bounds the runs of the whole fleet at once; 0: none.
	FleetRunLimit int
}

// DefaultFleetLease is the default of fleet-lease.
const DefaultFleetLease = 30 * time.Second

// SourceType names where a job's data comes from.
type SourceType string

// The source types a job can have.
const (
	SourceFile    SourceType = "file"    // an image file or block device: Path
	SourceRBD     SourceType = "rbd"     // a Ceph RBD image: Pool and Image
	SourceCommand SourceType = "command" // a shell command writing an extent stream: Command
)

// Source says where a job's data comes from; only the fields of its Type are
// set.
type Source struct {
	Type    SourceType
	Path    string
	Pool    string
	Image   string
	Command string
}

// Job is one thing to back up.
type Job struct {
	Name         string
	ScheduleName string
	Schedule     schedule.Schedule
	Source       Source
	FullAlways   bool    // never store differential revisions
	VerifySample float64 // percent of the image compared with the source after a backup
	// Directory is the job's repository: an absolute directory, or a
	// RADOS location rados:POOL/JOB.
	Directory string
	// Consistency says how the snapshots of an RBD job are made
	// consistent; nil for plain, crash-consistent snapshots.
	Consistency *Consistency
	// Ceph is how the job reaches its Ceph cluster, for an RBD source and
	// a RADOS repository: its ceph-conf and ceph-user, each else the
	// global one.
	Ceph cephconn.Options
}

// Consistency is a job's [jobs.NAME.consistency] table. One way is set:
// FreezeCommand with ThawCommand, SnapshotCommand, or GuestAgent.
type Consistency struct {
	FreezeCommand   string
	ThawCommand     string
	SnapshotCommand string
	GuestAgent      string        // Unix socket of the QEMU guest agent
	Timeout         time.Duration // 0: the default of the way chosen
	Fallback        string        // "crash" or "fail"
	// WarnCrashRuns is how many crash-consistent revisions in a row make
	// backy-check warn.
	WarnCrashRuns int
}

// DefaultWarnCrashRuns is the default of consistency.warn-crash-runs.
const DefaultWarnCrashRuns = 3

// JobNames returns the job names in order.
func (c *Config) JobNames() []string {
	return slices.Sorted(maps.Keys(c.Jobs))
}

// Load reads and parses the configuration file at path.
func Load(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("config: read %s: %w", path, err)
	}
	if len(data) > maxFileSize {
		return nil, List{{File: path, Kind: ErrBadValue, Msg: fmt.Sprintf("larger than %d MiB", maxFileSize>>20)}}
	}
	return Parse(path, data)
}

// Parse parses and validates a configuration; name is used in errors. The
// error, if any, is a List of every problem found.
func Parse(name string, data []byte) (*Config, error) {
	name = cmp.Or(name, "<input>")
	return decode(name, data)
}
