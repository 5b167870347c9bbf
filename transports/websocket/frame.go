package websocket

import (
	"encoding/binary"
	"errors"
	"math/bits"
)

// WebSocket opcodes (RFC 6455, section 5.2).
const (
	opContinuation = 0x0
	opText         = 0x1
	opBinary       = 0x2
	opClose        = 0x8
	opPing         = 0x9
	opPong         = 0xA
)

// Close codes the transport sends (RFC 6455, section 7.4.1, and
// docs/protocol.md, section 3).
const (
	closeNormal          = 1000
	closeGoingAway       = 1001
	closeProtocolError   = 1002
	closeNoStatus        = 1005 // received only: a close frame without a code
	closePolicyViolation = 1008
	closeTooBig          = 1009
	closeInternal        = 1011
	closeSuperseded      = 4001
)

// maxControlPayload is the largest payload of a control frame.
const maxControlPayload = 125

// errProtocol is a frame that breaks RFC 6455; the connection is failed
// with 1002.
type errProtocol string

func (e errProtocol) Error() string { return "websocket: " + string(e) }

// Frame errors.
var (
	errReserved     = errProtocol("reserved bits set without an extension")
	errUnmasked     = errProtocol("a client frame is not masked")
	errOpcode       = errProtocol("unknown opcode")
	errControl      = errProtocol("control frame fragmented or longer than 125 bytes")
	errContinuation = errProtocol("continuation frame outside a fragmented message")
	errInterleaved  = errProtocol("new message inside a fragmented one")
	errCloseCode    = errProtocol("close frame with an invalid code")
)

// errTooBig is a frame past the hard limit; the connection is failed with
// 1009.
var errTooBig = errors.New("websocket: frame past the size limit")

// header is a parsed frame header.
type header struct {
	fin    bool
	op     byte
	key    [4]byte
	length int // payload bytes
	size   int // header bytes
}

// parseHeader parses the frame header at the start of b. It reports false
// when b does not yet hold all of it. hardMax bounds the payload length.
func parseHeader(b []byte, hardMax int) (h header, ok bool, err error) {
	if len(b) < 2 {
		return h, false, nil
	}
	b0, b1 := b[0], b[1]
	h.fin = b0&0x80 != 0
	h.op = b0 & 0x0F
	if b0&0x70 != 0 {
		return h, false, errReserved
	}
	if b1&0x80 == 0 {
		return h, false, errUnmasked
	}
	switch h.op {
	case opContinuation, opText, opBinary:
	case opClose, opPing, opPong:
		if !h.fin || b1&0x7F > maxControlPayload {
			return h, false, errControl
		}
	default:
		return h, false, errOpcode
	}
	n, size := uint64(b1&0x7F), 2
	switch n {
	case 126:
		if len(b) < 4 {
			return h, false, nil
		}
		n, size = uint64(binary.BigEndian.Uint16(b[2:])), 4
	case 127:
		if len(b) < 10 {
			return h, false, nil
		}
		n, size = binary.BigEndian.Uint64(b[2:]), 10
	}
	if n > uint64(hardMax) {
		return h, false, errTooBig
	}
	if len(b) < size+4 {
		return h, false, nil
	}
	copy(h.key[:], b[size:size+4])
	h.length, h.size = int(n), size+4
	return h, true, nil
}

// unmask XORs b with key, which starts at b's first byte, eight bytes at a
// time.
func unmask(b []byte, key [4]byte) {
	k32 := binary.LittleEndian.Uint32(key[:])
	k64 := uint64(k32) | uint64(k32)<<32
	for len(b) >= 8 {
		binary.LittleEndian.PutUint64(b, binary.LittleEndian.Uint64(b)^k64)
		b = b[8:]
	}
	for i := range b {
		b[i] ^= byte(k32)
		k32 = bits.RotateLeft32(k32, -8)
	}
}

// appendFrame appends a final, unmasked server frame of opcode op holding
// payload (RFC 6455, section 5.2).
func appendFrame(b []byte, op byte, payload []byte) []byte {
	n := len(payload)
	switch {
	case n < 126:
		b = append(b, 0x80|op, byte(n))
	case n <= 0xFFFF:
		b = append(b, 0x80|op, 126, byte(n>>8), byte(n))
	default:
		b = append(b, 0x80|op, 127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	return append(b, payload...)
}

// appendTextFrame appends a final, unmasked text frame holding payload.
func appendTextFrame(b, payload []byte) []byte { return appendFrame(b, opText, payload) }

// closePayload is the payload of a close frame with code and text, the text
// cut to fit a control frame.
func closePayload(code int, text string) []byte {
	if len(text) > maxControlPayload-2 {
		text = text[:maxControlPayload-2]
	}
	b := binary.BigEndian.AppendUint16(make([]byte, 0, 2+len(text)), uint16(code))
	return append(b, text...)
}

// closeCode reads the code of a received close frame's payload: 1005 when
// it has none, an error when the code may not be sent (RFC 6455, 7.4).
func closeCode(p []byte) (int, error) {
	switch {
	case len(p) == 0:
		return closeNoStatus, nil
	case len(p) == 1:
		return 0, errCloseCode
	}
	code := int(binary.BigEndian.Uint16(p))
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1014, code >= 3000 && code <= 4999:
		return code, nil
	}
	return 0, errCloseCode
}
