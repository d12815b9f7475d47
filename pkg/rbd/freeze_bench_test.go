package rbd_test

import (
	"context"
	"fmt"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/backy/backy/internal/freezetest"
	"github.com/backy/backy/pkg/quiesce"
	"github.com/backy/backy/pkg/rbd"
	"github.com/backy/backy/pkg/rbd/cephtest"
)

// BenchmarkCephFreeze measures how long a guest stays frozen when
// backy-extract freezes it with the command kind around the snapshot: the
// guest is the loop-mounted ext4 image of internal/freezetest with its
// writer running, frozen with fsfreeze -f and thawed with fsfreeze -u, and
// the snapshot is made on the test cluster. Each backup also reads the
// 64 MiB image, after the thaw. It reports the median and the maximum of
// the freeze time recorded in the stream header (freeze start to thaw
// end), the longest write the guest's writer saw stalled, and the whole
// backup for comparison.
//
//	go test -tags librbd,pacific -run '^$' -bench CephFreeze -benchtime 20x ./pkg/rbd
func BenchmarkCephFreeze(b *testing.B) {
	conf := cephtest.Start(b)
	g := freezetest.New(b)
	img := rbd.Image{Pool: "rbd", Name: fmt.Sprintf("bench-freeze-%d", time.Now().UnixNano())}
	cephtest.Rbd(b, conf, nil, "create", "--size", "64M", img.Spec())
	cephtest.Rbd(b, conf, nil, "bench", "--io-type", "write", "--io-size", "4M", "--io-total", "64M", "--io-pattern", "seq", img.Spec())
	for _, e := range engines(b, conf) {
		b.Run(e.Name(), func(b *testing.B) {
			var frozen, whole []time.Duration
			var stall time.Duration
			for i := range b.N {
				start := time.Now()
				res, err := rbd.Backup(context.Background(), e, io.Discard, rbd.Options{
					Image: img, Full: true, ID: fmt.Sprintf("%s-%d-%d", e.Name(), b.N, i), Job: "bench",
					Quiesce: quiesce.Options{FreezeCommand: g.FreezeCommand(), ThawCommand: g.ThawCommand(), Timeout: 30 * time.Second},
				})
				if err != nil {
					b.Fatal(err)
				}
				if res.Header.Consistency != quiesce.Frozen {
					b.Fatalf("consistency %q", res.Header.Consistency)
				}
				whole = append(whole, time.Since(start))
				frozen = append(frozen, res.Header.Frozen)
				stall = max(stall, g.LongestStall(start))
				if err := e.RemoveSnapshot(context.Background(), img.At(res.Header.Snapshot)); err != nil {
					b.Fatal(err)
				}
			}
			slices.Sort(frozen)
			slices.Sort(whole)
			b.ReportMetric(ms(frozen[len(frozen)/2]), "frozen-median-ms")
			b.ReportMetric(ms(frozen[len(frozen)-1]), "frozen-max-ms")
			b.ReportMetric(ms(stall), "guest-stall-max-ms")
			b.ReportMetric(ms(whole[len(whole)/2]), "backup-median-ms")
		})
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
