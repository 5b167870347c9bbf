package broker

import (
	"encoding/json"
	"errors"
	"strconv"
	"unicode/utf8"
)

// Version is the protocol version this package speaks.
const Version = 1

// Envelope types. Client to broker: TypeJoin through TypeLeave, and
// TypeICEServers; broker to client: TypeWelcome through TypePong, and
// TypeICEServers as the answer. Offer, answer, candidate, bye and message
// are relayed from peer to peer.
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

	// TypeICEServers asks for fresh STUN and TURN servers and credentials,
	// and is the broker's answer.
	TypeICEServers = "ice-servers"

	TypeWelcome    = "welcome"
	TypePeerJoined = "peer-joined"
	TypePeerLeft   = "peer-left"
	TypeError      = "error"
	TypePong       = "pong"
)

// Limits on envelope fields.
const (
	MaxIDLength   = 64   // longest id, room or peer id, in bytes
	MaxMetaLength = 1024 // largest join meta, in bytes
	// MaxPingPayload is the largest payload of a ping, in bytes: the pong
	// echoes it, and what a client makes the broker write must stay small.
	MaxPingPayload = 256
)

// Envelope is one signaling message (docs/protocol.md, section 1). Payload
// holds the payload's JSON exactly as sent; nil means no payload field.
type Envelope struct {
	Type    string
	ID      string
	Room    string
	From    string
	To      string
	Seq     uint64
	Payload json.RawMessage
}

// wireEnvelope is the envelope as it is decoded; v is kept raw so that its
// type and value are checked apart.
type wireEnvelope struct {
	V       json.RawMessage
	Type    string
	ID      string
	Room    string
	From    string
	To      string
	Payload json.RawMessage
}

// Decode parses and validates one envelope as a client sent it. It refuses
// input longer than maxSize (0: no limit) with CodeTooLarge. The *Error it
// returns carries the envelope's id as Ref whenever one could be read. The
// client's from and seq are dropped.
func Decode(data []byte, maxSize int) (*Envelope, error) {
	if maxSize > 0 && len(data) > maxSize {
		return nil, Errorf(CodeTooLarge, "envelope is %d bytes, the limit is %d", len(data), maxSize)
	}
	if i := skipSpace(data, 0); i == len(data) || data[i] != '{' {
		return nil, Errorf(CodeBadRequest, "envelope must be a JSON object")
	}
	var w wireEnvelope
	if !utf8.Valid(data) {
		e := Errorf(CodeBadRequest, "envelope is not UTF-8")
		// The id may still be readable: the error then answers it.
		_ = scanEnvelope(data, &w)
		if len(w.ID) <= MaxIDLength && utf8.ValidString(w.ID) {
			e.Ref = w.ID
		}
		return nil, e
	}
	if err := scanEnvelope(data, &w); err != nil {
		e := Errorf(CodeBadRequest, "malformed envelope: %v", err)
		if len(w.ID) <= MaxIDLength {
			e.Ref = w.ID
		}
		return nil, e
	}
	env := &Envelope{Type: w.Type, ID: w.ID, Room: w.Room, To: w.To, Payload: w.Payload}
	if err := env.validate(w.V); err != nil {
		if len(w.ID) <= MaxIDLength {
			err.Ref = w.ID
		}
		return nil, err
	}
	return env, nil
}

func (env *Envelope) validate(v json.RawMessage) *Error {
	if len(v) > 0 {
		n, err := strconv.ParseFloat(string(v), 64)
		if ne := (*strconv.NumError)(nil); errors.As(err, &ne) && ne.Err == strconv.ErrRange {
			err = nil // a number all the same (1e400), just not 1
		}
		switch {
		case err != nil:
			return Errorf(CodeBadRequest, "v must be a number")
		case n != Version:
			return Errorf(CodeUnsupportedVersion, "protocol version %s is not supported; this broker speaks %d", v, Version)
		}
	}
	if len(env.ID) > MaxIDLength {
		return Errorf(CodeBadRequest, "id is longer than %d bytes", MaxIDLength)
	}
	switch env.Type {
	case "":
		return Errorf(CodeBadRequest, "envelope has no type")
	case TypeOffer, TypeAnswer, TypeCandidate, TypeBye:
		if env.To == "" {
			return Errorf(CodeBadRequest, "%s needs a to", env.Type)
		}
	case TypeMessage, TypeJoin, TypeAck, TypePing, TypeLeave, TypeICEServers:
	default:
		return Errorf(CodeUnknownType, "unknown type %q", truncate(env.Type, 64))
	}
	if env.To != "" && !ValidID(env.To) {
		return Errorf(CodeBadRequest, "to is not a valid peer id: 1 to 64 of A-Z a-z 0-9 . _ -")
	}
	if env.Type == TypeJoin && !ValidID(env.Room) {
		return Errorf(CodeBadRequest, "join needs a room: 1 to 64 of A-Z a-z 0-9 . _ -")
	}
	return nil
}

// ValidID reports whether s is a valid room or peer id: 1 to 64 characters of
// A-Z a-z 0-9 . _ -.
func ValidID(s string) bool {
	if len(s) == 0 || len(s) > MaxIDLength {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// Encode returns the envelope as the broker writes it: v, type, room, from,
// to, seq (when not 0) and payload (when not nil). Ids are written as they
// are, so Room, From and To must be valid ids (or empty).
func (env *Envelope) Encode() []byte {
	return env.appendBody(env.appendHead(make([]byte, 0, 64+len(env.Payload)), env.Seq))
}

// appendHead writes `{"seq":N,` (or `{` when seq is 0).
func (env *Envelope) appendHead(b []byte, seq uint64) []byte {
	if seq == 0 {
		return append(b, '{')
	}
	b = append(b, `{"seq":`...)
	b = strconv.AppendUint(b, seq, 10)
	return append(b, ',')
}

// appendBody writes everything after the head, through the closing brace.
func (env *Envelope) appendBody(b []byte) []byte {
	b = append(b, `"v":1,"type":`...)
	b = strconv.AppendQuote(b, env.Type) // types are plain ASCII: Go and JSON quoting agree
	b = appendField(b, "room", env.Room)
	b = appendField(b, "from", env.From)
	b = appendField(b, "to", env.To)
	if env.Payload != nil {
		b = append(b, `,"payload":`...)
		b = append(b, env.Payload...)
	}
	return append(b, '}')
}

func appendField(b []byte, name, value string) []byte {
	if value == "" {
		return b
	}
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, '"', ':', '"')
	b = append(b, value...)
	return append(b, '"')
}

// frame is an encoded envelope whose seq can be spliced in without encoding
// it again: body is everything after the opening brace.
type frame struct {
	typ  string
	body []byte
	// room, when set, is body with seqRoom free bytes before it; once says
	// the frame has one delivery only, whose seq withSeq may then write
	// into that room rather than copy the body.
	room []byte
	once bool
}

// seqRoom is the room before a frame's body for the longest seq prefix.
const seqRoom = len(`{"seq":18446744073709551615,`)

func newFrame(env *Envelope) frame {
	n := 96 + len(env.Type) + len(env.Room) + len(env.From) + len(env.To) + len(env.Payload)
	b := env.appendBody(make([]byte, seqRoom, seqRoom+n))
	return frame{typ: env.Type, body: b[seqRoom:], room: b}
}

// single returns f for its one and only delivery.
func (f frame) single() frame {
	f.once = f.room != nil
	return f
}

// withSeq returns the frame's full JSON with seq set.
func (f frame) withSeq(seq uint64) []byte {
	if f.once {
		var p [seqRoom]byte
		prefix := strconv.AppendUint(append(p[:0], `{"seq":`...), seq, 10)
		prefix = append(prefix, ',')
		start := seqRoom - len(prefix)
		copy(f.room[start:], prefix)
		return f.room[start:]
	}
	b := make([]byte, 0, len(f.body)+24)
	b = append(b, `{"seq":`...)
	b = strconv.AppendUint(b, seq, 10)
	b = append(b, ',')
	return append(b, f.body...)
}

// errorEnvelope builds the error envelope that tells a peer of e.
func errorEnvelope(e *Error) *Envelope {
	p := struct {
		Code    Code   `json:"code"`
		Message string `json:"message"`
		Ref     string `json:"ref,omitempty"`
	}{e.Code, e.Message, e.Ref}
	payload, _ := json.Marshal(p)
	return &Envelope{Type: TypeError, Payload: payload}
}

// ErrorFrame returns the JSON of the error envelope that tells a peer of e,
// with no seq, for a refusal that no session's stream carries (a refused join,
// an HTTP request for an unknown session).
func ErrorFrame(e *Error) []byte { return errorEnvelope(e).Encode() }

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
