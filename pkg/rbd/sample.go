package rbd

import (
	"math/rand/v2"
	"slices"
)

// SampleBlocks picks ceil(percent% of the 4 MiB blocks of an image of size
// bytes), at least one, as ascending block numbers. The same seed gives the
// same blocks; seed 0 picks a random one.
func SampleBlocks(size int64, percent float64, seed uint64) []int64 {
	nblocks := (size + ChunkSize - 1) / ChunkSize
	if percent >= 100 {
		all := make([]int64, nblocks)
		for i := range all {
			all[i] = int64(i)
		}
		return all
	}
	k := min(int64(float64(nblocks)*percent/100+0.999999), nblocks)
	if seed == 0 {
		seed = rand.Uint64()
	}
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	chosen := make(map[int64]bool, k)
	for int64(len(chosen)) < k {
		chosen[r.Int64N(nblocks)] = true
	}
	list := make([]int64, 0, k)
	for n := range chosen {
		list = append(list, n)
	}
	slices.Sort(list)
	return list
}
