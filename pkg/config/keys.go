package config

import "slices"

// The keys each table may have. The decoder rejects any other key, and the
// man page test checks that each of them is documented.
var (
	topKeys    = []string{"global", "schedules", "jobs", "include"}
	globalKeys = []string{
		"base-dir", "worker-limit", "status-file", "status-interval",
		"console-addresses", "console-port", "console-socket", "backoff-initial", "backoff-max",
		"metrics-listen", "rados-pool",
		"ceph-conf", "ceph-user",
		"fleet", "fleet-member", "fleet-lease", "fleet-run-limit",
	}
	ruleKeys        = []string{"interval", "keep"}
	jobKeys         = []string{"schedule", "source", "full-always", "verify-sample", "directory", "repository", "consistency", "ceph-conf", "ceph-user"}
	consistencyKeys = []string{"freeze-command", "thaw-command", "snapshot-command", "guest-agent",
		"timeout", "fallback", "warn-crash-runs"}
	sourceKeys = map[SourceType][]string{
		SourceFile:    {"type", "path"},
		SourceRBD:     {"type", "pool", "image"},
		SourceCommand: {"type", "command"},
	}
)

// knownKeys lists every key path the decoder understands, with NAME and TAG
// standing for the names an operator chooses.
func knownKeys() []string {
	keys := []string{"include"}
	for _, k := range globalKeys {
		keys = append(keys, "global."+k)
	}
	for _, k := range ruleKeys {
		keys = append(keys, "schedules.NAME.TAG."+k)
	}
	for _, k := range jobKeys {
		keys = append(keys, "jobs.NAME."+k)
	}
	for _, k := range consistencyKeys {
		keys = append(keys, "jobs.NAME.consistency."+k)
	}
	for _, typ := range sourceTypes() {
		for _, k := range sourceKeys[typ] {
			if key := "jobs.NAME.source." + k; !slices.Contains(keys, key) {
				keys = append(keys, key)
			}
		}
	}
	return keys
}

func sourceTypes() []SourceType {
	return []SourceType{SourceFile, SourceRBD, SourceCommand}
}
