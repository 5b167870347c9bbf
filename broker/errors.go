package broker

import (
	"errors"
	"fmt"
)

// Code is a protocol error code, as written on the wire in an error envelope.
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
	CodeShuttingDown       Code = "shutting-down"
	CodeInternal           Code = "internal"
)

// Error is a refusal that reaches the peer as an error envelope with its code.
// Transports write it to the wire as it is; any other error reaches the peer
// as CodeInternal, with details only in the log. Match it with errors.As.
type Error struct {
	Code    Code
	Message string
	Ref     string // id of the envelope it answers, if that had one
	Err     error  // the cause, if it is one of the package's sentinels (ErrShutdown); may be nil
}

func (e *Error) Error() string { return fmt.Sprintf("broker: %s: %s", e.Code, e.Message) }

// Unwrap returns the refusal's cause, so that errors.Is(err, ErrShutdown) holds.
func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error with code and a formatted message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// AsError converts err to the *Error a peer is shown: err itself when it is
// one, else an internal error that says nothing of err's details.
func AsError(err error) *Error {
	var pe *Error
	if errors.As(err, &pe) {
		return pe
	}
	return &Error{Code: CodeInternal, Message: "internal error"}
}

// HTTPStatus is the HTTP status that answers a refusal with code c on the
// HTTP transports.
func (c Code) HTTPStatus() int {
	switch c {
	case CodeUnauthorized:
		return 401
	case CodeForbidden:
		return 403
	case CodeSessionExpired:
		return 404
	case CodePeerIDTaken:
		return 409
	case CodeTooLarge:
		return 413
	case CodeRateLimited:
		return 429
	case CodeRoomFull:
		return 409
	case CodeInternal:
		return 500
	case CodeShuttingDown:
		return 503
	default:
		return 400
	}
}

// Sentinel errors of the broker's own API.
var (
	ErrSessionClosed = errors.New("broker: session closed")
	ErrSuperseded    = errors.New("broker: connection superseded by a newer one")
	// ErrSessionMoved is ErrSessionClosed for a session that goes on on
	// another node, which took it over: look it up again (Broker.Session)
	// to take it back.
	ErrSessionMoved = fmt.Errorf("%w: another node took it over", ErrSessionClosed)
	// ErrShutdown is the cause of the CodeShuttingDown refusal of a join
	// that comes while the broker drains or closes.
	ErrShutdown = errors.New("broker: shutting down")
	// ErrUnknownTransport is the cause of NewTransport's and
	// NewTransportConfig's error for a name no transport registered.
	ErrUnknownTransport = errors.New("broker: unknown transport")
)
