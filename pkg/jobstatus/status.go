package jobstatus

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/backy/backy/pkg/exitcode"
	"github.com/backy/backy/pkg/fsperm"
)

// Format is the version of the status file layout.
const Format = 1

// ErrBadFile is returned for a status file that cannot be understood.
var ErrBadFile = exitcode.New(exitcode.Failure, "jobstatus: bad status file")

// Status is the status file: what the daemon knows, written atomically every
// status-interval for backy-check and for people (one job per line, so grep
// works as well as jq).
type Status struct {
	Format  int       `json:"format"`
	Written time.Time `json:"written"`
	// Stopped is set in the last status a daemon writes when it shuts down
	// cleanly: the file then tells monitoring that nobody is scheduling.
	Stopped        time.Time `json:"stopped,omitzero"`
	Started        time.Time `json:"started"`
	PID            int       `json:"pid"`
	Version        string    `json:"version"`
	Config         string    `json:"config"`
	StatusInterval float64   `json:"status_interval_seconds"`
	WorkerLimit    int       `json:"worker_limit"`
	Running        int       `json:"running"`
	// Fleet is set by a daemon in a fleet: Jobs then holds every job of
	// the fleet as its owner last reported it.
	Fleet *Fleet `json:"fleet,omitempty"`
	// Jobs comes last: Marshal writes it one job a line.
	Jobs map[string]Job `json:"jobs"`
}

// Fleet is the fleet as the daemon writing the status sees it.
type Fleet struct {
	Name    string        `json:"name"`
	Member  string        `json:"member"` // the daemon writing the status
	Lease   float64       `json:"lease_seconds"`
	Members []FleetMember `json:"members"`
	Error   string        `json:"error,omitempty"` // the last exchange with the cluster failed
}

// FleetMember is one daemon of a fleet.
type FleetMember struct {
	Name    string    `json:"name"`
	Alive   bool      `json:"alive"` // holds its membership lease
	Host    string    `json:"host,omitempty"`
	PID     int       `json:"pid,omitempty"`
	Written time.Time `json:"written,omitzero"` // of its last published view
	Running int       `json:"running"`
	Jobs    int       `json:"jobs"` // jobs it owns
}

// Job is one job's line in the status file.
type Job struct {
	// Owner is the fleet member that runs the job; empty outside a fleet,
	// or while the job moves.
	Owner        string    `json:"owner,omitempty"`
	Schedule     string    `json:"schedule"`
	Directory    string    `json:"directory"`
	FirstSeen    time.Time `json:"first_seen"`
	Running      bool      `json:"running"`
	RunningSince time.Time `json:"running_since,omitzero"`
	Stage        string    `json:"stage,omitempty"`
	Queued       bool      `json:"queued,omitempty"`
	LastRun      time.Time `json:"last_run,omitzero"`
	LastEnd      time.Time `json:"last_end,omitzero"`
	LastResult   string    `json:"last_result,omitempty"` // "ok" or "failed"
	LastError    string    `json:"last_error,omitempty"`
	// ThawFailed is when a run last ended in THAW FAILED: the guest may
	// still be frozen (backy-check says CRITICAL); zero after the next
	// successful run.
	ThawFailed   time.Time `json:"thaw_failed,omitzero"`
	LastRevision string    `json:"last_revision,omitempty"`
	LastSuccess  time.Time `json:"last_success,omitzero"`
	Failures     int       `json:"failures"`
	LastFailure  time.Time `json:"last_failure,omitzero"`
	NextDue      time.Time `json:"next_due,omitzero"`
	NextTags     []string  `json:"next_tags,omitempty"`
	// Revisions, Distrusted, NewestRevision and NewestTrusted describe the
	// repository as the daemon last read it.
	Revisions      int       `json:"revisions"`
	Distrusted     int       `json:"distrusted"`
	NewestRevision time.Time `json:"newest_revision,omitzero"`
	NewestTrusted  time.Time `json:"newest_trusted,omitzero"`
	RepoError      string    `json:"repository_error,omitempty"`
	// The consistency of the newest revision, and how many of the newest
	// revisions in a row are only crash-consistent (RepoInfo).
	Consistency       string  `json:"consistency,omitempty"`
	ConsistencyReason string  `json:"consistency_reason,omitempty"`
	FrozenSeconds     float64 `json:"frozen_seconds,omitempty"`
	CrashRuns         int     `json:"crash_runs,omitempty"`
	SLA               string  `json:"sla"`
	// What the last backup read (extent stream bytes) and wrote into the
	// repository, nil until known: 0 is a value (a differential backup of
	// an unchanged source writes nothing); and the repository's disk usage
	// after the last run.
	LastReadBytes    *int64 `json:"last_read_bytes,omitempty"`
	LastWrittenBytes *int64 `json:"last_written_bytes,omitempty"`
	RepositoryBytes  int64  `json:"repository_bytes,omitempty"`
}

// Marshal renders s with one job per line, in name order.
func Marshal(s *Status) ([]byte, error) {
	head := *s
	head.Jobs = nil
	b, err := json.Marshal(head)
	if err != nil {
		return nil, err
	}
	// Replace the trailing `"jobs":null}` with the jobs, one a line.
	b = bytes.TrimSuffix(b, []byte(`"jobs":null}`))
	var buf bytes.Buffer
	buf.Grow(len(b) + 512*len(s.Jobs))
	buf.Write(b)
	buf.WriteString(`"jobs":{`)
	for i, name := range slices.Sorted(maps.Keys(s.Jobs)) {
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.WriteString("\n")
		k, _ := json.Marshal(name)
		v, err := json.Marshal(s.Jobs[name])
		if err != nil {
			return nil, err
		}
		buf.Write(k)
		buf.WriteByte(':')
		buf.Write(v)
	}
	buf.WriteString("\n}}\n")
	return buf.Bytes(), nil
}

// Write replaces the status file at path atomically and durably
// (fsperm.Mode.WriteFile): readers see the old file or the new one, never
// a part, and after a power cut the backoff it carries is never older than
// the daemon's last write before the cut. It is readable by the group of
// its directory when that is shared (750): how backy-check run by a
// monitoring user reads it.
func Write(path string, s *Status) error {
	b, err := Marshal(s)
	if err == nil {
		err = fsperm.Of(filepath.Dir(path)).WriteFile(filepath.Dir(path), path, b)
	}
	if err != nil {
		return fmt.Errorf("jobstatus: status file: %w", err)
	}
	return nil
}

// Read reads a status file. A missing file is an error wrapping
// os.ErrNotExist.
func Read(path string) (*Status, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("jobstatus: status file: %w", err)
	}
	var s Status
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrBadFile, path, err)
	}
	if s.Format != Format {
		return nil, fmt.Errorf("%w: %s has format %d, want %d", ErrBadFile, path, s.Format, Format)
	}
	if s.Jobs == nil {
		s.Jobs = map[string]Job{}
	}
	return &s, nil
}
