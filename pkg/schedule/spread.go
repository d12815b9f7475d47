package schedule

import (
	"crypto/sha256"
	"encoding/binary"
	"time"
)

// spreadRange bounds Spread. It is far longer than any interval, so the
// spread reduced modulo an interval is close to uniform for every interval,
// and independent of the schedule, so editing a schedule does not move the
// time of day at which a job runs.
const spreadRange = 1 << 32 // seconds, about 136 years

// Spread is the job's deterministic offset in whole seconds, derived from its
// name alone. Each tag's slots are offset by Spread modulo the tag's interval.
// SHA-256 is used for its stability across releases and platforms, not for
// secrecy.
func Spread(job string) time.Duration {
	sum := sha256.Sum256([]byte(job))
	return time.Duration(binary.BigEndian.Uint64(sum[:8])%spreadRange) * time.Second
}
