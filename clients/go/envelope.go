package switchboard

import (
	"encoding/json"
	"errors"
	"fmt"
)

// Version is the protocol version this package speaks.
const Version = 1

// Envelope types (docs/protocol.md, section 2). Join through Leave go from
// client to broker; Welcome through Pong come from the broker; Offer, Answer,
// Candidate, Bye and Message are relayed from peer to peer.
const (
	TypeJoin      = "join"
	TypeOffer     = "offer"
	TypeAnswer    = "answer"
	TypeCandidate = "candidate"
	TypeBye       = "bye"
	TypeMessage   = "message"
	TypeAck       = "ack"
	TypePing      = "ping"
	TypeLeave     = "leave"

	// TypeICEServers asks the broker for fresh STUN and TURN credentials,
	// and is its answer; Client.RefreshICEServers sends it.
	TypeICEServers = "ice-servers"

	TypeWelcome    = "welcome"
	TypePeerJoined = "peer-joined"
	TypePeerLeft   = "peer-left"
	TypeError      = "error"
	TypePong       = "pong"
)

// Envelope is one signaling message, as it is on the wire (docs/protocol.md,
// section 1).
//
// On sending, V and ID are filled in by the Client when they are zero, and
// From and Seq are ignored: the broker sets them. Payload holds the payload's
// JSON exactly as it was sent; nil means no payload, and json.RawMessage("null")
// a null one.
type Envelope struct {
	V       int             `json:"v,omitempty"`
	Type    string          `json:"type"`
	ID      string          `json:"id,omitempty"`
	Room    string          `json:"room,omitempty"`
	From    string          `json:"from,omitempty"`
	To      string          `json:"to,omitempty"`
	Seq     uint64          `json:"seq,omitempty"`
	Payload json.RawMessage `json:"payload,omitempty"`
}

// Decode unmarshals the envelope's payload into v, as json.Unmarshal does.
// A missing payload decodes as JSON null.
func (e Envelope) Decode(v any) error {
	p := e.Payload
	if len(p) == 0 {
		p = json.RawMessage("null")
	}
	if err := json.Unmarshal(p, v); err != nil {
		return fmt.Errorf("switchboard: %s payload: %w", e.Type, err)
	}
	return nil
}

// Description returns the session description carried by an offer or answer.
func (e Envelope) Description() (SessionDescription, error) {
	var sd SessionDescription
	if err := e.Decode(&sd); err != nil {
		return sd, err
	}
	if sd.Type == "" {
		sd.Type = e.Type
	}
	return sd, nil
}

// Candidate returns the ICE candidate carried by a candidate envelope, or nil
// for the end of candidates (a null payload).
func (e Envelope) Candidate() (*ICECandidateInit, error) {
	var c *ICECandidateInit
	if err := e.Decode(&c); err != nil {
		return nil, err
	}
	return c, nil
}

// Err returns the *Error carried by an envelope of type error, and nil for
// any other envelope.
func (e Envelope) Err() error {
	if e.Type != TypeError {
		return nil
	}
	var pe Error
	if err := e.Decode(&pe); err != nil || pe.Code == "" {
		return &Error{Code: CodeInternal, Message: "malformed error envelope"}
	}
	return &pe
}

// SessionDescription is an SDP offer or answer, shaped exactly like the
// browser's RTCSessionDescriptionInit and pion/webrtc's SessionDescription.
type SessionDescription struct {
	Type string `json:"type"` // "offer", "answer", "pranswer" or "rollback"
	SDP  string `json:"sdp"`
}

// ICECandidateInit is one ICE candidate, shaped exactly like the browser's
// RTCIceCandidateInit and pion/webrtc's ICECandidateInit. Nil pointers are
// JSON nulls.
type ICECandidateInit struct {
	Candidate        string  `json:"candidate"`
	SDPMid           *string `json:"sdpMid"`
	SDPMLineIndex    *uint16 `json:"sdpMLineIndex"`
	UsernameFragment *string `json:"usernameFragment"`
}

// PeerInfo is another peer in the room, as the welcome and peer-joined
// envelopes describe it.
type PeerInfo struct {
	Peer string         `json:"peer"`
	Meta map[string]any `json:"meta,omitempty"`
}

// PeerLeft is the payload of a peer-left envelope.
type PeerLeft struct {
	Peer   string `json:"peer"`
	Reason string `json:"reason"` // "leave", "timeout" or "kicked"
}

// Welcome is the payload of the broker's answer to a join.
type Welcome struct {
	Peer    string     `json:"peer"`
	Session string     `json:"session"`
	Peers   []PeerInfo `json:"peers"`
	Resumed bool       `json:"resumed"`
	// ICEServers are the STUN and TURN servers to use, with credentials
	// valid for ICETTL seconds (0: they do not expire).
	ICEServers []ICEServer `json:"ice_servers"`
	ICETTL     int64       `json:"ice_ttl"`
}

// joinPayload is the payload of a join.
type joinPayload struct {
	Peer   string         `json:"peer,omitempty"`
	Token  string         `json:"token,omitempty"`
	Resume *resumeInfo    `json:"resume,omitempty"`
	Meta   map[string]any `json:"meta,omitempty"`
}

type resumeInfo struct {
	Session string `json:"session"`
	LastSeq uint64 `json:"last_seq"`
}

// Code is a protocol error code, as written on the wire.
type Code string

// The protocol's error codes (docs/protocol.md, section 2).
const (
	CodeBadRequest         Code = "bad-request"
	CodeTooLarge           Code = "too-large"
	CodeUnsupportedVersion Code = "unsupported-version"
	CodeUnknownType        Code = "unknown-type"
	CodeUnauthorized       Code = "unauthorized"
	CodeForbidden          Code = "forbidden"
	CodePeerIDTaken        Code = "peer-id-taken"
	CodePeerUnavailable    Code = "peer-unavailable"
	CodeRateLimited        Code = "rate-limited"
	CodeRoomFull           Code = "room-full"
	CodeSessionExpired     Code = "session-expired"
	CodeSlowConsumer       Code = "slow-consumer"
	CodeInternal           Code = "internal"
)

// Error is an error sent by the broker: the payload of an error envelope.
// Match it with errors.As.
type Error struct {
	Code    Code   `json:"code"`
	Message string `json:"message"`
	Ref     string `json:"ref,omitempty"` // id of the envelope it answers, if that had one
}

func (e *Error) Error() string {
	if e.Ref != "" {
		return fmt.Sprintf("switchboard: %s: %s (ref %s)", e.Code, e.Message, e.Ref)
	}
	return fmt.Sprintf("switchboard: %s: %s", e.Code, e.Message)
}

// endsSession reports whether the broker ends the session after sending an
// error with this code outside of a join.
func (c Code) endsSession() bool {
	return c == CodeUnauthorized || c == CodeSlowConsumer || c == CodeSessionExpired
}

// Sentinel errors of the client.
var (
	// ErrClosed is returned by a Client's methods after Close.
	ErrClosed = errors.New("switchboard: client closed")
	// ErrReconnectFailed ends a Client that could not reconnect within
	// Options.ReconnectTimeout, or whose connection broke with reconnection
	// off. The error that ends the Client wraps it and the last dial error.
	ErrReconnectFailed = errors.New("switchboard: could not reconnect")
	// ErrGap ends a Client whose broker skipped a sequence number and could
	// not deliver the missing messages on resume.
	ErrGap = errors.New("switchboard: gap in the message sequence")
	// ErrUnknownTransport is returned by Dial for a transport name that is not
	// registered.
	ErrUnknownTransport = errors.New("switchboard: unknown transport")
)
