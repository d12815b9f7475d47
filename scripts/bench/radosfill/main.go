//go:build librbd

// Command radosfill fills a RADOS pool for the purge benchmark
// (scripts/bench/rados.sh): -chunks chunk objects and -revisions revisions
// spread over -jobs jobs, written through pkg/repo as backy-store writes
// them. Each chunk is 64 bytes of its own (so a pool of 100,000 chunks fits
// the test cluster's memory-backed OSD; a purge never reads a chunk's
// content, it lists, marks and removes), each revision's index names a run
// of -per chunks, and the last -garbage percent of the chunks no revision
// names: the sweep removes them.
//
// With -du it fills nothing and prints the bytes the pool's objects hold
// (all of them, then the chunk objects): the test cluster has no manager,
// so rados df reports no pools.
package main

import (
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/backy/backy/pkg/cephconn"
	"github.com/backy/backy/pkg/repo"
)

func main() {
	conf := flag.String("conf", os.Getenv("CEPH_CONF"), "Ceph configuration file")
	pool := flag.String("pool", "", "pool")
	jobs := flag.Int("jobs", 10, "jobs")
	chunks := flag.Int("chunks", 100000, "chunk objects")
	revs := flag.Int("revisions", 1000, "revisions, over all jobs")
	per := flag.Int("per", 1000, "chunks each revision's index names")
	garbage := flag.Int("garbage", 10, "percent of the chunks no revision names")
	du := flag.Bool("du", false, "print the bytes of the pool's objects, and of its chunk objects")
	flag.Parse()
	if *du {
		all, chunks, err := usage(*conf, *pool)
		if err != nil {
			fmt.Fprintf(os.Stderr, "radosfill: %v\n", err)
			os.Exit(1)
		}
		fmt.Println(all, chunks)
		return
	}
	if err := fill(*conf, *pool, *jobs, *chunks, *revs, *per, *garbage); err != nil {
		fmt.Fprintf(os.Stderr, "radosfill: %v\n", err)
		os.Exit(1)
	}
}

// usage sums the sizes of the pool's objects by listing them.
func usage(conf, pool string) (all, chunks uint64, err error) {
	conn, err := cephconn.Connect(context.Background(), cephconn.Options{Conf: conf})
	if err != nil {
		return 0, 0, err
	}
	defer conn.Shutdown()
	io, err := conn.OpenIOContext(pool)
	if err != nil {
		return 0, 0, err
	}
	defer io.Destroy()
	it, err := io.Iter()
	if err != nil {
		return 0, 0, err
	}
	defer it.Close()
	for it.Next() {
		st, err := io.Stat(it.Value())
		if err != nil {
			return 0, 0, err
		}
		all += st.Size
		if strings.HasPrefix(it.Value(), "chunk.") {
			chunks += st.Size
		}
	}
	return all, chunks, it.Err()
}

func chunk(i int) ([]byte, repo.Hash) {
	data := make([]byte, 64)
	binary.LittleEndian.PutUint64(data, uint64(i))
	copy(data[8:], "backy radosfill chunk")
	return data, repo.HashChunk(data)
}

func fill(conf, pool string, jobs, chunks, revs, per, garbage int) error {
	if pool == "" || jobs < 1 || chunks < 1 || revs < jobs || per < 1 {
		return fmt.Errorf("bad arguments")
	}
	used := chunks - chunks*garbage/100
	hashes := make([]repo.Hash, chunks)
	for i := range hashes {
		_, hashes[i] = chunk(i)
	}
	start := time.Now()
	rs := make([]*repo.Repo, jobs)
	for j := range rs {
		r, err := repo.OpenOrCreate(repo.RadosLocation{Pool: pool, Job: fmt.Sprintf("job%d", j)}.String(), repo.WithCeph(repo.Ceph{Conf: conf}))
		if err != nil {
			return err
		}
		defer r.Close()
		rs[j] = r
		// Job j writes chunks j, j+jobs, ...: every chunk once in the pool.
		b, err := r.Chunks.Begin()
		if err != nil {
			return err
		}
		for i := j; i < chunks; i += jobs {
			data, h := chunk(i)
			if err := b.Put(h, repo.Compress(nil, data)); err != nil {
				return err
			}
		}
		if err := b.Commit(); err != nil {
			return err
		}
	}
	// Revision k names a run of per used chunks starting at k*used/revs:
	// together they name every used chunk (when revs*per >= used).
	for k := 0; k < revs; k++ {
		ix := repo.NewIndex(int64(per) * repo.ChunkSize)
		for i := range ix.Hashes {
			ix.Hashes[i] = hashes[(k*used/revs+i)%used]
		}
		rev := &repo.Revision{ID: repo.NewRevisionID(), Time: time.Now().UTC(), Kind: "full", Trust: repo.Trusted, Size: ix.Size}
		if err := rs[k%jobs].Commit(rev, ix); err != nil {
			return err
		}
	}
	fmt.Fprintf(os.Stderr, "radosfill: pool %s: %d chunks (%d named by no revision), %d revisions of %d jobs, in %.1fs\n",
		pool, chunks, chunks-used, revs, jobs, time.Since(start).Seconds())
	return nil
}
