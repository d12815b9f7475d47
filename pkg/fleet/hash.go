// Package fleet lets several backy-schedule daemons share the jobs of one
// configuration through a RADOS pool (docs/fleet.md): each daemon holds a
// membership lease, each job is owned through a lease of its own, and the
// jobs are spread over the live members by rendezvous hashing. Every
// lease is a cls_lock lock with a duration, so it expires by the OSD's
// clock, never by a daemon's.
//
// The hashing is plain Go and always built; the RADOS side needs the build
// tags librbd,pacific, as the RADOS repositories do.
package fleet

import (
	"crypto/sha256"
	"encoding/binary"
	"slices"
)

// Owner is the member that should own job among members (rendezvous, or
// highest-random-weight, hashing): each member scores the job, the highest
// score wins. When a member leaves, only its jobs move; when one joins, it
// takes about 1/n of every other's jobs and nothing else moves. "" when
// members is empty.
func Owner(job string, members []string) string {
	best, bestScore := "", uint64(0)
	for _, m := range members {
		s := score(m, job)
		if best == "" || s > bestScore || s == bestScore && m < best {
			best, bestScore = m, s
		}
	}
	return best
}

func score(member, job string) uint64 {
	h := sha256.New()
	h.Write([]byte(member))
	h.Write([]byte{0})
	h.Write([]byte(job))
	var sum [sha256.Size]byte
	return binary.BigEndian.Uint64(h.Sum(sum[:0]))
}

// Assign maps each job to its owner among members.
func Assign(jobs, members []string) map[string]string {
	m := slices.Clone(members)
	slices.Sort(m)
	m = slices.Compact(m)
	out := make(map[string]string, len(jobs))
	for _, j := range jobs {
		out[j] = Owner(j, m)
	}
	return out
}
