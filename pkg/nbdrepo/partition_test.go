package nbdrepo

import "testing"

func TestSplitPartition(t *testing.T) {
	for _, tc := range []struct {
		name, spec string
		n          int
		ok         bool
	}{
		{"latest/p1", "latest", 1, true},
		{"abc/p12", "abc", 12, true},
		{"/p2", "", 2, true},
		{"latest", "latest", 0, false},
		{"latest/p", "latest/p", 0, false},
		{"latest/p0", "latest/p0", 0, false},
		{"latest/p01", "latest/p01", 0, false},
		{"latest/p+1", "latest/p+1", 0, false},
		{"latest/p-1", "latest/p-1", 0, false},
		{"latest/px", "latest/px", 0, false},
	} {
		spec, n, ok := splitPartition(tc.name)
		if spec != tc.spec || n != tc.n || ok != tc.ok {
			t.Errorf("%q: %q %d %v, want %q %d %v", tc.name, spec, n, ok, tc.spec, tc.n, tc.ok)
		}
	}
}
