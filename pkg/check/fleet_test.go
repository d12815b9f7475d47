package check

import (
	"strings"
	"testing"

	"github.com/backy/backy/pkg/jobstatus"
)

func fleetWorld(t *testing.T) Input {
	in := world(t, "vm1", "vm2", "vm3")
	in.Status.Fleet = &jobstatus.Fleet{Name: "site1", Member: "b1", Lease: 30, Members: []jobstatus.FleetMember{
		{Name: "b1", Alive: true, Jobs: 2}, {Name: "b2", Alive: true, Jobs: 1},
	}}
	return in
}

// The daemons alive and the jobs each owns, on the status line.
func TestFleetMembers(t *testing.T) {
	r := Evaluate(fleetWorld(t))
	want := "OK: 3 jobs within SLA; fleet site1: 2 daemons alive: b1 (2 jobs), b2 (1 job) | jobs=3;;;0 outside_sla=0;;0;0 warnings=0;0;;0 oldest_trusted_age=3600s;;;0 crash_consistent_only=0;0;;0 max_crash_runs=0;;;0 thaw_failed=0;;0;0 fleet_daemons_alive=2;;;0 status_age=10s;;90;0\n"
	if r.State != OK || output(r) != want {
		t.Errorf("state %d, output\n%s\nwant\n%s", r.State, output(r), want)
	}
}

// A daemon cut off from the cluster, or without its membership lease, is
// a warning: its jobs run elsewhere.
func TestFleetCutOff(t *testing.T) {
	in := fleetWorld(t)
	in.Status.Fleet.Error = "fleet: reading the fleet view: rados: ret=-110"
	r := Evaluate(in)
	want := "WARNING: fleet site1: 2 daemons alive: b1 (2 jobs), b2 (1 job); b1 cannot reach the cluster: fleet: reading the fleet view: rados: ret=-110; 3 jobs within SLA"
	if r.State != Warning || r.Line != want {
		t.Errorf("state %d, line\n%s\nwant\n%s", r.State, r.Line, want)
	}
	in = fleetWorld(t)
	in.Status.Fleet.Members[0].Alive = false
	if r := Evaluate(in); r.State != Warning || r.Line != "WARNING: fleet site1: 1 daemon alive: b2 (1 job); b1 holds no membership lease; 3 jobs within SLA" {
		t.Errorf("state %d, line %s", r.State, r.Line)
	}
}

// A job outside its SLA that no member owns (a member that did not reload
// the job list the others did is its hash owner) says so, as a hint; the
// state stays the SLA's, and an owned job gets no hint.
func TestFleetUnownedJob(t *testing.T) {
	in := fleetWorld(t)
	in.Repos["vm2"] = jobstatus.RepoInfo{}
	in.Repos["vm3"] = jobstatus.RepoInfo{}
	in.Status.Jobs["vm3"] = jobstatus.Job{Owner: "b2"}
	r := Evaluate(in)
	out := output(r)
	for _, want := range []string{
		"CRITICAL: vm2: never backed up; no daemon of fleet site1 runs it now (has every member reloaded the job list?)\n",
		"CRITICAL: vm3: never backed up\n",
	} {
		if r.State != Critical || !strings.Contains(out, want) {
			t.Errorf("state %d, output\n%s\nwant a line %q", r.State, out, want)
		}
	}
}
