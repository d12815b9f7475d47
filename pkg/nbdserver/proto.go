package nbdserver

import "github.com/pojntfx/go-nbd/pkg/protocol"

// NBD protocol constants (github.com/NetworkBlockDevice/nbd, doc/proto.md).
// Those go-nbd's protocol package defines are taken from it; the rest (the
// options, commands and replies go-nbd does not implement) are defined here.
const (
	oldstyleMagic = protocol.NEGOTIATION_MAGIC_OLDSTYLE
	optMagic      = protocol.NEGOTIATION_MAGIC_OPTION
	replyMagic    = protocol.NEGOTIATION_MAGIC_REPLY // option replies
	flagFixedNew  = protocol.NEGOTIATION_HANDSHAKE_FLAG_FIXED_NEWSTYLE

	optExportName      = 1
	optAbort           = protocol.NEGOTIATION_ID_OPTION_ABORT
	optList            = protocol.NEGOTIATION_ID_OPTION_LIST
	optInfo            = protocol.NEGOTIATION_ID_OPTION_INFO
	optGo              = protocol.NEGOTIATION_ID_OPTION_GO
	optStructuredReply = 8
	optListMetaContext = 9
	optSetMetaContext  = 10

	repAck         = protocol.NEGOTIATION_TYPE_REPLY_ACK
	repServer      = protocol.NEGOTIATION_TYPE_REPLY_SERVER
	repInfo        = protocol.NEGOTIATION_TYPE_REPLY_INFO
	repMetaContext = 4
	repErrUnsup    = protocol.NEGOTIATION_TYPE_REPLY_ERR_UNSUPPORTED
	repErrPolicy   = 1<<31 | 2
	repErrInvalid  = 1<<31 | 3
	repErrUnknown  = protocol.NEGOTIATION_TYPE_REPLY_ERR_UNKNOWN
	repErrTooBig   = 1<<31 | 9

	// Client flags: fixed newstyle, and "no zeroes", which only changes
	// the reply to NBD_OPT_EXPORT_NAME (not supported). Any other bit
	// closes the connection.
	clientFlagsKnown = 1<<0 | 1<<1

	infoExport      = protocol.NEGOTIATION_TYPE_INFO_EXPORT
	infoName        = protocol.NEGOTIATION_TYPE_INFO_NAME
	infoDescription = protocol.NEGOTIATION_TYPE_INFO_DESCRIPTION
	infoBlockSize   = protocol.NEGOTIATION_TYPE_INFO_BLOCKSIZE

	// Transmission flags.
	flagHasFlags     = protocol.NEGOTIATION_REPLY_FLAGS_HAS_FLAGS
	flagReadOnly     = 1 << 1
	flagSendFlush    = 1 << 2
	flagCanMultiConn = protocol.NEGOTIATION_REPLY_FLAGS_CAN_MULTI_CONN

	requestMagic      = protocol.TRANSMISSION_MAGIC_REQUEST
	simpleReplyMagic  = protocol.TRANSMISSION_MAGIC_REPLY
	requestHeaderSize = 28
	replyHeaderSize   = 16
	optHeaderSize     = 16
	optReplyHdrSize   = 20

	cmdRead        = protocol.TRANSMISSION_TYPE_REQUEST_READ
	cmdWrite       = protocol.TRANSMISSION_TYPE_REQUEST_WRITE
	cmdDisc        = protocol.TRANSMISSION_TYPE_REQUEST_DISC
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
	errnoEPERM  = protocol.TRANSMISSION_ERROR_EPERM
	errnoEIO    = 5
	errnoEINVAL = protocol.TRANSMISSION_ERROR_EINVAL
	errnoENOSPC = 28

	// maxOptionLen bounds the data of one negotiation option: longer ones
	// are skipped and answered NBD_REP_ERR_TOO_BIG. The spec limits export
	// names to 4096 bytes.
	maxOptionLen = 64 << 10

	// maxRequest is the largest read or write served, advertised as the
	// maximum block size (32 MiB, what clients expect to be allowed).
	maxRequest = 32 << 20
)
