package nbdserver

import "errors"

var errNoContext = errors.New("nbdserver: block status without the base:allocation context of this export")

// maxDescriptors bounds one block status reply; clients ask again for the
// rest.
const maxDescriptors = 1024

// maxExtent keeps a descriptor's length inside its 32 bits.
const maxExtent = 1 << 30

// blockStatus answers NBD_CMD_BLOCK_STATUS for base:allocation from the
// export's Mapper; an export without one is reported as all data, which
// the protocol allows.
func (c *conn) blockStatus(r request) {
	o := c.serving
	if !c.metaOn || c.metaName != o.name {
		c.fail(r, errnoEINVAL, errNoContext)
		return
	}
	size := o.size
	if r.length == 0 || r.offset >= uint64(size) || uint64(r.length) > uint64(size)-r.offset {
		c.fail(r, errnoEINVAL, errOutOfRange)
		return
	}
	m, _ := o.exp.(Mapper)
	off, end := int64(r.offset), int64(r.offset)+int64(r.length)
	p := be.AppendUint32(nil, metaAllocationID)
	for n := 0; off < end && n < maxDescriptors; n++ {
		zero, run := false, min(size-off, maxExtent)
		if m != nil {
			zero, run = m.Extent(off, run)
			run = max(1, min(run, size-off, maxExtent))
		}
		if r.flags&cmdFlagReqOne != 0 {
			run = min(run, end-off)
			n = maxDescriptors
		}
		status := uint32(0)
		if zero {
			status = stateHole | stateZero
		}
		p = be.AppendUint32(be.AppendUint32(p, uint32(run)), status)
		off += run
	}
	c.send(chunkHeader(r.handle, replyTypeBlockStatus, len(p)), p)
}
