package schedule

import (
	"fmt"
	"testing"
	"time"
)

func TestSpreadIsStable(t *testing.T) {
	// A job's spread must not change between releases: it decides the time
	// of day operators see the job run at.
	if a, b := Spread("vm1"), Spread("vm1"); a != b {
		t.Fatalf("Spread(vm1) = %v then %v", a, b)
	}
	if Spread("vm1") == Spread("vm2") {
		t.Error("Spread(vm1) == Spread(vm2)")
	}
	for _, name := range []string{"", "vm1", "a-very-long-job-name.example.com"} {
		s := Spread(name)
		if s < 0 || s >= spreadRange*time.Second || s%time.Second != 0 {
			t.Errorf("Spread(%q) = %v, want whole seconds in [0, %d s)", name, s, spreadRange)
		}
	}
}

func TestSpreadCoversTheDay(t *testing.T) {
	// 10,000 jobs on a daily schedule should start in every hour of the day,
	// each hour getting roughly its share.
	const jobs = 10000
	var perHour [24]int
	for i := range jobs {
		offset := Spread(fmt.Sprintf("vm%05d", i)) % day
		perHour[offset/time.Hour]++
	}
	for h, n := range perHour {
		if n < jobs/24*8/10 || n > jobs/24*12/10 {
			t.Errorf("hour %02d has %d of %d jobs; want about %d", h, n, jobs, jobs/24)
		}
	}
}
