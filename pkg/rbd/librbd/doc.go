// Package librbd is the librbd engine of pkg/rbd, through go-ceph. It is
// built only with the build tags "librbd,pacific" (Debian's librbd-dev and
// librados-dev, Ceph 16); without them New returns rbd.ErrNoLibrbd, so
// everything else builds on machines without librbd.
//
// The changed extents come from librbd's diff iteration (rbd_diff_iterate2,
// the same call `rbd export-diff` makes, with the parent included), asked
// for one window of the image at a time so that memory stays bounded
// whatever the image size. The callback only collects extents: it may run
// on a librados thread, where blocking could stall the very reads that
// would unblock it. The data is then read with several reads in flight and
// handed on in order.
package librbd
