//go:build librbd

package repo

// #include <malloc.h>
// #include <stdlib.h>
//
// // backy_one_arena runs when the program is loaded, before any thread
// // exists: glibc gives a thread its arena on its first allocation, and
// // a limit set later leaves the arenas made before it in use.
// __attribute__((constructor)) static void backy_one_arena(void) {
// 	if (getenv("MALLOC_ARENA_MAX") == NULL) {
// 		mallopt(M_ARENA_MAX, 1);
// 	}
// }
import "C"

// Programs with the RADOS backend allocate from glibc's one main arena
// (backy_one_arena above; MALLOC_ARENA_MAX in the environment overrides).
// librados allocates a chunk-sized buffer for every write (a copy of the
// data) and every read (the received bytes), from whichever of its threads
// handles it; by default glibc gives each such thread an arena of its own
// (up to 8 per core), and each arena keeps several MiB of freed buffers
// for reuse: 23 MiB of a backup's peak RSS of 133 MiB were five arenas of
// 3-5 MiB. With one arena the freed buffers serve every thread: the same
// backup peaked at 115-116 MiB (MALLOC_ARENA_MAX=1) against 133-136 MiB,
// with the same CPU time. Returning freed buffers to the system instead
// (a fixed M_MMAP_THRESHOLD) saved as much but cost 2 s more system CPU per
// backup in page faults.
