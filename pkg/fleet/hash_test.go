package fleet

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

func jobNames(n int) []string {
	jobs := make([]string, n)
	for i := range jobs {
		jobs[i] = fmt.Sprintf("vm%04d", i)
	}
	return jobs
}

func counts(a map[string]string) map[string]int {
	c := map[string]int{}
	for _, m := range a {
		c[m]++
	}
	return c
}

// 1,000 jobs over three members: each within +-10% of the mean.
func TestSpreadThousandJobs(t *testing.T) {
	members := []string{"backup1", "backup2", "backup3"}
	c := counts(Assign(jobNames(1000), members))
	mean := 1000.0 / 3
	for _, m := range members {
		if n := float64(c[m]); n < mean*0.9 || n > mean*1.1 {
			t.Errorf("%s owns %d of 1000 jobs, mean %.0f: outside +-10%%: %v", m, c[m], mean, c)
		}
	}
	t.Logf("1000 jobs over %v: %v", members, c)
}

// TestSpreadRandomSets: over 2,000 sets of 1,000 random job names and
// three members, how many sets leave a member outside +-10% of the mean
// (docs/fleet.md quotes the figures). A fair die gives about 6.5%: more
// than 10% would mean the hash spreads worse than chance.
func TestSpreadRandomSets(t *testing.T) {
	rng := rand.New(rand.NewChaCha8([32]byte{'f', 'l', 'e', 'e', 't'}))
	members := []string{"backup1", "backup2", "backup3"}
	const sets, jobs = 2000, 1000
	mean := float64(jobs) / 3
	outside, worst := 0, 0.0
	names := make([]string, jobs)
	for range sets {
		for i := range names {
			names[i] = fmt.Sprintf("vm-%016x", rng.Uint64())
		}
		off := 0.0
		for _, n := range counts(Assign(names, members)) {
			off = max(off, math.Abs(float64(n)-mean)/mean)
		}
		if off > 0.1 {
			outside++
		}
		worst = max(worst, off)
	}
	t.Logf("%d of %d sets (%.1f%%) had a member outside +-10%%; the worst %.1f%% off", outside, sets, 100*float64(outside)/sets, 100*worst)
	if outside > sets/10 {
		t.Errorf("%d of %d sets had a member outside +-10%%, a fair die about 6.5%%", outside, sets)
	}
}

// The 30-job fleet test's names: no member owns more than twice the mean.
func TestSpreadThirtyJobs(t *testing.T) {
	jobs := make([]string, 30)
	for i := range jobs {
		jobs[i] = fmt.Sprintf("job%02d", i)
	}
	c := counts(Assign(jobs, []string{"d1", "d2", "d3"}))
	for m, n := range c {
		if n > 20 {
			t.Errorf("%s owns %d of 30 jobs: %v", m, n, c)
		}
	}
	if len(c) != 3 {
		t.Errorf("not every member owns a job: %v", c)
	}
}

// A member leaving moves only its own jobs; a member joining takes jobs
// only from the others, about a third of them.
func TestRebalanceMovesOnlyWhatMust(t *testing.T) {
	jobs := jobNames(1000)
	three := Assign(jobs, []string{"a", "b", "c"})
	two := Assign(jobs, []string{"a", "c"})
	moved := 0
	for _, j := range jobs {
		if three[j] != "b" && two[j] != three[j] {
			t.Fatalf("%s moved from %s to %s when b left", j, three[j], two[j])
		}
		if three[j] != two[j] {
			moved++
		}
	}
	four := Assign(jobs, []string{"a", "b", "c", "d"})
	for _, j := range jobs {
		if four[j] != "d" && four[j] != three[j] {
			t.Fatalf("%s moved from %s to %s when d joined", j, three[j], four[j])
		}
	}
	if n := counts(four)["d"]; n < 200 || n > 300 {
		t.Errorf("the fourth member takes %d of 1000 jobs, want about 250", n)
	}
	if moved != counts(three)["b"] {
		t.Errorf("%d jobs moved when b left, b owned %d", moved, counts(three)["b"])
	}
}

func TestOwnerIgnoresOrderAndDuplicates(t *testing.T) {
	for _, j := range jobNames(50) {
		a := Owner(j, []string{"x", "y", "z"})
		if b := Assign([]string{j}, []string{"z", "y", "x", "y"})[j]; a != b {
			t.Fatalf("%s: %s vs %s", j, a, b)
		}
	}
	if Owner("j", nil) != "" {
		t.Error("an owner without members")
	}
}

func BenchmarkAssign1000(b *testing.B) {
	jobs := jobNames(1000)
	for b.Loop() {
		Assign(jobs, []string{"backup1", "backup2", "backup3"})
	}
}
