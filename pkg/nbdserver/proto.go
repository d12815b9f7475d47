package nbdserver

// NBD protocol constants this package needs, from the protocol specification
// (github.com/NetworkBlockDevice/nbd, doc/proto.md). go-nbd's protocol package
// lacks most of them.
const (
	optMagic   = uint64(0x49484156454F5054) // "IHAVEOPT"
	replyMagic = uint64(0x3e889045565a9)    // option reply magic

	optExportName = 1
	optAbort      = 2
	optList       = 3
	optInfo       = 6
	optGo         = 7

	optStructuredReply = 8
	optListMetaContext = 9
	optSetMetaContext  = 10

	repAck         = 1
	repServer      = 2
	repInfo        = 3
	repMetaContext = 4
	repErrPolicy   = 1<<31 | 2
	repErrInvalid  = 1<<31 | 3
	repErrUnknown  = 1<<31 | 6

	infoExport = 0

	// Transmission flags.
	flagHasFlags     = 1 << 0
	flagReadOnly     = 1 << 1
	flagSendFlush    = 1 << 2
	flagCanMultiConn = 1 << 8

	requestMagic      = uint32(0x25609513)
	simpleReplyMagic  = uint32(0x67446698)
	requestHeaderSize = 28
	replyHeaderSize   = 16
	optHeaderSize     = 16
	optReplyHdrSize   = 20
	handshakeSize     = 18 // server's newstyle greeting
	clientFlagsSize   = 4

	cmdRead        = 0
	cmdWrite       = 1
	cmdDisc        = 2
	cmdFlush       = 3
	cmdBlockStatus = 7

	cmdFlagReqOne = 1 << 3 // BLOCK_STATUS: one descriptor only

	// Structured replies (NBD_OPT_STRUCTURED_REPLY).
	structuredReplyMagic = uint32(0x668e33ef)
	structuredHeaderSize = 20
	replyFlagDone        = 1
	replyTypeNone        = 0
	replyTypeOffsetData  = 1
	replyTypeOffsetHole  = 2
	replyTypeBlockStatus = 5
	replyTypeError       = 1<<15 | 1

	// The base:allocation metadata context and its status flags.
	metaAllocation   = "base:allocation"
	metaAllocationID = 1
	stateHole        = 1
	stateZero        = 2

	// Error numbers on the wire (NBD defines its own, equal to Linux's).
	errnoEPERM  = 1
	errnoEIO    = 5
	errnoEINVAL = 22
	errnoENOSPC = 28

	// maxOptionLen bounds the data of one negotiation option. The spec limits
	// export names to 4096 bytes; go-nbd would allocate whatever a client
	// claims.
	maxOptionLen = 64 << 10

	// maxRequest is the largest read or write go-nbd accepts; it is also what
	// we advertise as the maximum block size.
	maxRequest = 32 << 20
)
