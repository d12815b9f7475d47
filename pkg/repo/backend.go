package repo

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/backy/backy/pkg/cephconn"
	"github.com/backy/backy/pkg/exitcode"
)

// Backend is where a repository keeps its objects. There are two: a
// directory (dirBackend, docs/repository.md "Layout") and a RADOS pool
// shared by many jobs (radosBackend, docs/repository.md "RADOS"). Repo
// holds the format (index and metadata encoding, chunk verification,
// revision order); a backend only stores, lists and locks.
//
// Missing things are reported as errors wrapping fs.ErrNotExist, so that
// Repo treats both backends alike.
type Backend interface {
	// Location is the repository as the user names it (a directory, or
	// rados:POOL/JOB).
	Location() string
	// Chunks is the chunk store (shared by every job of a pool in RADOS).
	Chunks() ChunkStore

	// RevisionIDs lists the ids of every published revision's metadata,
	// readable or not, in no particular order.
	RevisionIDs() ([]string, error)
	// ReadMeta returns a revision's metadata as stored.
	ReadMeta(id string) ([]byte, error)
	// WriteMeta publishes metadata atomically: readers see the old or the
	// new bytes, never a part. A revision exists exactly when its metadata
	// does, so Commit writes it last.
	WriteMeta(id string, b []byte) error
	// ReadIndex returns a revision's index as stored.
	ReadIndex(id string) ([]byte, error)
	// WriteIndex stores an index atomically (before its metadata).
	WriteIndex(id string, b []byte) error
	// RemoveRevision deletes metadata first, then the index.
	RemoveRevision(id string) error
	// OrphanIndexes lists the ids of indexes without metadata.
	OrphanIndexes() ([]string, error)
	// FindLeftovers lists what interrupted stores left (locks: see
	// Repo.FindLeftovers).
	FindLeftovers() (Leftovers, error)
	// RemoveLeftovers deletes what FindLeftovers found.
	RemoveLeftovers(Leftovers) error

	// Lock takes a named lock (LockStore, LockChunks, LockMeta), waiting
	// at most timeout; ErrBusy when another process holds it.
	Lock(name string, shared bool, timeout time.Duration) (*Lock, error)

	// discard removes the repository if it holds no revision, for a
	// first store that failed (Repo.DiscardIfEmpty).
	discard() error
	// Close releases what the backend holds (a cluster connection).
	Close() error
}

// Leftovers of interrupted stores, as purge finds them: entries of tmp/
// (chunk batches, half-written metadata and index files) and index files
// whose metadata was never published (a crash between the two writes of
// Commit).
type Leftovers struct {
	Tmp     []string // names under tmp/ (the directory backend only)
	Indexes []string // revision ids with an index but no metadata
}

// ErrNoRados is returned for a RADOS location by a build without librados.
var ErrNoRados = exitcode.New(exitcode.Usage, "repo: this backy was built without RADOS support (build tags librbd,pacific)")

// RadosPrefix starts a RADOS location: rados:POOL/JOB.
const RadosPrefix = "rados:"

// IsRados reports whether loc names a RADOS repository.
func IsRados(loc string) bool { return strings.HasPrefix(loc, RadosPrefix) }

// RadosLocation is a parsed rados:POOL/JOB.
type RadosLocation struct {
	Pool string
	Job  string
}

func (l RadosLocation) String() string { return RadosPrefix + l.Pool + "/" + l.Job }

// ParseRadosLocation parses rados:POOL/JOB. A pool name is what Ceph
// accepts without a slash; a job name is letters, digits, '.', '_' and
// '-', not starting with '.'.
func ParseRadosLocation(loc string) (RadosLocation, error) {
	rest, ok := strings.CutPrefix(loc, RadosPrefix)
	pool, job, ok2 := strings.Cut(rest, "/")
	switch {
	case !ok || !ok2 || pool == "" || job == "":
		return RadosLocation{}, fmt.Errorf("%w: %q: a RADOS location is rados:POOL/JOB", ErrBadLocation, loc)
	case !validJob(job):
		return RadosLocation{}, fmt.Errorf("%w: %q: a job name is letters, digits, '.', '_' and '-' (not first '.')", ErrBadLocation, loc)
	}
	return RadosLocation{Pool: pool, Job: job}, nil
}

func validJob(s string) bool {
	if s == "" || s[0] == '.' || len(s) > 200 {
		return false
	}
	for _, c := range s {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
		if !ok {
			return false
		}
	}
	return true
}

// Ceph says how to reach the cluster of a RADOS location; the zero value
// is Ceph's defaults ($CEPH_CONF or /etc/ceph/ceph.conf, client.admin).
type Ceph = cephconn.Options

// Option changes how Open and OpenOrCreate reach a repository.
type Option func(*openOptions)

type openOptions struct {
	ctx  context.Context
	ceph Ceph
}

// WithCeph names the Ceph configuration and user for RADOS locations.
func WithCeph(c Ceph) Option { return func(o *openOptions) { o.ceph = c } }

// WithContext bounds the connection attempt to a cluster (librados waits
// up to client_mount_timeout for a monitor otherwise).
func WithContext(ctx context.Context) Option { return func(o *openOptions) { o.ctx = ctx } }

// Via is the options of a command that opens repositories with the Ceph
// settings c, the connection attempt bounded by ctx.
func Via(ctx context.Context, c Ceph) []Option { return []Option{WithCeph(c), WithContext(ctx)} }

func options(opts []Option) openOptions {
	o := openOptions{ctx: context.Background()}
	for _, f := range opts {
		f(&o)
	}
	return o
}

// PoolPurge is what a pool purge found and did.
type PoolPurge struct {
	Jobs, Revisions int
	Chunks          int // chunk objects listed
	Referenced      int // distinct chunks the revisions (and pending indexes) use
	Removed         int // unreferenced chunks removed (or, dry, to remove)
	Young           int // unreferenced chunks kept: written or reused after the cutoff
	Indexes         int // leftover indexes removed
	Writers         int // stores running when the purge began
	// Relisted are jobs whose object was in the pool but not in the
	// marker's list (a lost marker made again): marked, and listed again.
	Relisted  []string
	Cutoff    time.Time
	Skipped   bool // the last sweep was younger than MinInterval
	LastSweep time.Time
}

// PoolPurgeOptions tune PurgePool.
type PoolPurgeOptions struct {
	Wait        time.Duration // for the pool's purge lock and each job's meta lock
	DryRun      bool
	MinInterval time.Duration // skip the sweep if the last began less than this ago
	// Unsafe is wrapped around the error of an index that cannot be read:
	// purge then refuses, as it cannot know which chunks it needs.
	Unsafe error
}

// PoolPurger is a backend whose chunks are shared by the jobs of a pool:
// purge works on the whole pool.
type PoolPurger interface {
	PurgePool(ctx context.Context, opt PoolPurgeOptions) (*PoolPurge, error)
}

// GraceEnv overrides the grace period of a pool purge (a Go duration;
// default DefaultGrace), for tests.
const GraceEnv = "BACKY_RADOS_GRACE"

// DefaultGrace is subtracted from the oldest running store's start before
// a pool purge sweeps: it covers clocks of backup servers that disagree.
const DefaultGrace = time.Hour

// LeaseEnv overrides the lease of RADOS locks (a Go duration of at least a
// second; default DefaultLease), for tests that wait for a dead holder's
// lease to end.
const LeaseEnv = "BACKY_RADOS_LEASE"

// DefaultLease is how long a RADOS lock outlives its holder's last renewal.
const DefaultLease = 30 * time.Second
