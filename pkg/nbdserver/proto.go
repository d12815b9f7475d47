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

	repAck        = 1
	repServer     = 2
	repInfo       = 3
	repErrPolicy  = 1<<31 | 2
	repErrInvalid = 1<<31 | 3
	repErrUnknown = 1<<31 | 6

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

	cmdRead  = 0
	cmdWrite = 1
	cmdDisc  = 2
	cmdFlush = 3

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
