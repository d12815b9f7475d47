package extent

import (
	"reflect"
	"testing"
)

func TestZeroRun(t *testing.T) {
	var got [][2]int64
	z := ZeroRun{Write: func(off, length int64) error {
		got = append(got, [2]int64{off, length})
		return nil
	}}
	for _, r := range [][2]int64{{0, 4}, {4, 8}, {8, 10}, {20, 30}, {30, 31}, {40, 41}} {
		if err := z.Add(r[0], r[1]); err != nil {
			t.Fatal(err)
		}
	}
	if err := z.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := z.Flush(); err != nil {
		t.Fatal(err)
	}
	want := [][2]int64{{0, 10}, {20, 11}, {40, 1}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestIsZero(t *testing.T) {
	p := make([]byte, 2*MaxDataLength+3)
	if !IsZero(p) || !IsZero(nil) {
		t.Fatal("zeros not recognised")
	}
	p[len(p)-1] = 1
	if IsZero(p) {
		t.Fatal("a non-zero byte past the first block was missed")
	}
}
