package broker

import (
	"errors"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// TokenClaims are the claims of a join token (docs/protocol.md, section 5).
type TokenClaims struct {
	Room string `json:"room"`           // a room id, or "*" for any
	Peer string `json:"peer,omitempty"` // a peer id; empty: any
	jwt.RegisteredClaims
}

// NewToken returns an HS256 JWT that admits peer (empty: any peer) to room
// ("*": any room) for ttl.
func NewToken(secret []byte, room, peer string, ttl time.Duration) (string, error) {
	if len(secret) == 0 {
		return "", errors.New("broker: token secret is empty")
	}
	c := TokenClaims{Room: room, Peer: peer, RegisteredClaims: jwt.RegisteredClaims{
		ExpiresAt: jwt.NewNumericDate(time.Now().Add(ttl)),
		IssuedAt:  jwt.NewNumericDate(time.Now()),
	}}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(secret)
}

// checkToken verifies token for a join to room as peer and returns the peer id
// the token names, if any; an empty room or peer is not checked. Without a
// secret every join is admitted.
func checkToken(secret []byte, token, room, peer string) (string, error) {
	if len(secret) == 0 {
		return "", nil
	}
	if token == "" {
		return "", Errorf(CodeUnauthorized, "a token is needed")
	}
	var c TokenClaims
	_, err := jwt.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return secret, nil },
		jwt.WithValidMethods([]string{"HS256"}), jwt.WithExpirationRequired())
	if err != nil {
		return "", Errorf(CodeUnauthorized, "token is not valid: %s", tokenProblem(err))
	}
	if room != "" && c.Room != "*" && c.Room != room {
		return "", Errorf(CodeForbidden, "the token does not admit room %s", room)
	}
	if c.Peer != "" && peer != "" && c.Peer != peer {
		return "", Errorf(CodeForbidden, "the token does not admit peer %s", peer)
	}
	return c.Peer, nil
}

func tokenProblem(err error) string {
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return "expired"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return "bad signature"
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "malformed"
	default:
		return "rejected"
	}
}
