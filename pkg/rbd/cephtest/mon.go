package cephtest

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"time"
)

// The monitor batches its changes: a change that arrives within
// paxos_propose_interval (Ceph's default: 1 s) of the last commit waits
// until that interval has passed, one after a quiet spell waits
// paxos_min_wait (0.05 s). Every RBD snapshot create and remove is such a
// change (the pool's snapshot ids live in the OSD map), so these settings
// decide what snapshots cost. The helpers below reach the monitor through
// its admin socket, a local Unix socket: they make no monitor operation
// and no commit of their own.

// Ceph's default monitor proposal settings, and the interval Ceph's own
// one-monitor test clusters use (src/test/vstart_wrapper.sh in the Ceph
// tree starts them with "paxos propose interval = 0.01").
const (
	DefaultProposeInterval = "1"
	DefaultMinWait         = "0.05"
	TestProposeInterval    = "0.01"
)

// MonAdmin sends one command (a JSON object such as {"prefix": "perf
// dump"}) to the admin socket of the monitor of the cluster whose
// ceph.conf is conf, and returns the reply.
func MonAdmin(conf string, cmd map[string]any) ([]byte, error) {
	sock := filepath.Join(filepath.Dir(conf), "run", "mon.a.asok")
	req, err := json.Marshal(cmd)
	if err != nil {
		return nil, fmt.Errorf("cephtest: %w", err)
	}
	c, err := net.DialTimeout("unix", sock, 10*time.Second)
	if err != nil {
		return nil, fmt.Errorf("cephtest: monitor admin socket: %w", err)
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(30 * time.Second)); err != nil {
		return nil, fmt.Errorf("cephtest: monitor admin socket: %w", err)
	}
	// The protocol: the command and a NUL; the reply's length (4 bytes,
	// big-endian), then the reply.
	if _, err := c.Write(append(req, 0)); err != nil {
		return nil, fmt.Errorf("cephtest: monitor admin socket: %w", err)
	}
	var n uint32
	if err := binary.Read(c, binary.BigEndian, &n); err != nil {
		return nil, fmt.Errorf("cephtest: monitor admin socket: reply length: %w", err)
	}
	if n > 64<<20 {
		return nil, fmt.Errorf("cephtest: monitor admin socket: reply of %d bytes", n)
	}
	out := make([]byte, n)
	if _, err := io.ReadFull(c, out); err != nil {
		return nil, fmt.Errorf("cephtest: monitor admin socket: reply: %w", err)
	}
	return out, nil
}

// SetMonConfig changes a monitor option at run time, as `ceph daemon mon.a
// config set NAME VALUE` does, and checks that it took.
func SetMonConfig(conf, name, value string) error {
	if _, err := MonAdmin(conf, map[string]any{"prefix": "config set", "var": name, "val": []string{value}}); err != nil {
		return err
	}
	out, err := MonAdmin(conf, map[string]any{"prefix": "config get", "var": name})
	if err != nil {
		return err
	}
	var got map[string]string
	if err := json.Unmarshal(out, &got); err != nil {
		return fmt.Errorf("cephtest: config get %s: %w: %s", name, err, out)
	}
	want, err1 := parseFloat(value)
	have, err2 := parseFloat(got[name])
	if err1 != nil || err2 != nil || want != have {
		return fmt.Errorf("cephtest: monitor option %s is %q after setting it to %q", name, got[name], value)
	}
	return nil
}

func parseFloat(s string) (float64, error) {
	var f float64
	_, err := fmt.Sscan(s, &f)
	return f, err
}

// MonCommits returns how many paxos commits the monitor has made.
func MonCommits(conf string) (uint64, error) {
	out, err := MonAdmin(conf, map[string]any{"prefix": "perf dump", "logger": "paxos"})
	if err != nil {
		return 0, err
	}
	var d struct {
		Paxos struct {
			Commit *uint64 `json:"commit"`
		} `json:"paxos"`
	}
	if err := json.Unmarshal(out, &d); err != nil || d.Paxos.Commit == nil {
		return 0, fmt.Errorf("cephtest: no paxos commit counter in the monitor's perf dump: %v", err)
	}
	return *d.Paxos.Commit, nil
}

// WaitMonQuiet returns once the monitor has committed nothing for quiet,
// so that a change made next is not delayed by earlier ones; it gives up
// after timeout. It watches for at least quiet, as the time of the last
// commit is not known.
func WaitMonQuiet(conf string, quiet, timeout time.Duration) error {
	start := time.Now()
	last, err := MonCommits(conf)
	if err != nil {
		return err
	}
	since := start
	for {
		if time.Since(since) >= quiet {
			return nil
		}
		if time.Since(start) > timeout {
			return fmt.Errorf("cephtest: the monitor committed within every %v for %v", quiet, timeout)
		}
		time.Sleep(20 * time.Millisecond)
		n, err := MonCommits(conf)
		if err != nil {
			return err
		}
		if n != last {
			last, since = n, time.Now()
		}
	}
}
