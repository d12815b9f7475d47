// Package nbdmount is backy-nbd mount: it shows the files of a revision
// under a directory without root and without the kernel NBD module. It
// serves each partition (or the whole disk) as a read-only image file from
// its own FUSE file system (go-fuse, in-process, over pkg/nbdrepo's
// verified chunk cache) and mounts the ext2/3/4 ones read-only with
// fuse2fs, never replaying a journal (fuse2fs.go says which fuse2fs,
// images.go what a read error of its device becomes). Everything it mounts lies below the mount
// point and is found again from /proc/self/mountinfo, so a later mount on
// the same directory, or Unmount, cleans up after a mount command that
// was killed. The layout and the promises are in docs/nbd.md.
package nbdmount

import "github.com/backy/backy/pkg/exitcode"

var (
	// ErrNoHelper is returned when fuse2fs or fusermount3 is missing; the
	// message names the Debian package.
	ErrNoHelper = exitcode.New(exitcode.NotFound, "nbdmount: helper program not found")
	// ErrNoFUSE is returned when /dev/fuse cannot be opened.
	ErrNoFUSE = exitcode.New(exitcode.Failure, "nbdmount: cannot use FUSE")
	// ErrMountpoint is returned for a mount point that is not an empty
	// directory (leftovers of an earlier backy-nbd mount do not count).
	ErrMountpoint = exitcode.New(exitcode.Usage, "nbdmount: bad mount point")
	// ErrBusy is returned when another backy-nbd mount uses the mount point.
	ErrBusy = exitcode.New(exitcode.Busy, "nbdmount: mount point in use by another backy-nbd mount")
	// ErrNotMounted is returned by Unmount for a directory no backy-nbd
	// mount ever used.
	ErrNotMounted = exitcode.New(exitcode.NotFound, "nbdmount: not a backy-nbd mount point")
	// ErrHelperDied is returned when fuse2fs exits (or the image directory
	// is unmounted) while the revision is mounted; everything else is
	// unmounted first.
	ErrHelperDied = exitcode.New(exitcode.Failure, "nbdmount: helper exited")
)
