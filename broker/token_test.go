package broker

import (
	"context"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

var testSecret = []byte("0123456789abcdef0123456789abcdef")

func sign(t *testing.T, m jwt.SigningMethod, key any, claims jwt.Claims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(m, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func claims(room, peer string, exp time.Time) TokenClaims {
	return TokenClaims{Room: room, Peer: peer, RegisteredClaims: jwt.RegisteredClaims{ExpiresAt: jwt.NewNumericDate(exp)}}
}

func TestNewToken(t *testing.T) {
	tok, err := NewToken(testSecret, "demo", "alice", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Count(tok, ".") != 2 {
		t.Fatalf("token %q is not a JWS", tok)
	}
	var c TokenClaims
	parsed, err := jwt.ParseWithClaims(tok, &c, func(*jwt.Token) (any, error) { return testSecret, nil })
	if err != nil {
		t.Fatal(err)
	}
	if parsed.Method.Alg() != "HS256" || c.Room != "demo" || c.Peer != "alice" {
		t.Fatalf("token: alg %s, claims %+v", parsed.Method.Alg(), c)
	}
	exp := c.ExpiresAt.Time
	if d := time.Until(exp); d < 59*time.Minute || d > 61*time.Minute {
		t.Fatalf("exp is %v away, want an hour", d)
	}
	if _, err := NewToken(nil, "demo", "", time.Hour); err == nil {
		t.Fatal("NewToken without a secret made a token")
	}
	// No peer: the claim is left out.
	tok, _ = NewToken(testSecret, "*", "", time.Minute)
	payload := strings.Split(tok, ".")[1]
	seg, _ := jwt.NewParser().DecodeSegment(payload)
	if strings.Contains(string(seg), `"peer"`) {
		t.Fatalf("a token for any peer names one: %s", seg)
	}
}

func TestCheckToken(t *testing.T) {
	now := time.Now()
	hour := now.Add(time.Hour)
	valid, _ := NewToken(testSecret, "demo", "alice", time.Hour)
	anyPeer, _ := NewToken(testSecret, "demo", "", time.Hour)
	anyRoom, _ := NewToken(testSecret, "*", "", time.Hour)
	anyRoomAlice, _ := NewToken(testSecret, "*", "alice", time.Hour)
	expired, _ := NewToken(testSecret, "demo", "alice", -time.Minute)
	otherSecret, _ := NewToken([]byte("another secret, as long as the first"), "demo", "alice", time.Hour)
	none := sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claims("demo", "alice", hour))
	hs512 := sign(t, jwt.SigningMethodHS512, testSecret, claims("demo", "alice", hour))
	hs384 := sign(t, jwt.SigningMethodHS384, testSecret, claims("demo", "alice", hour))
	noExp := sign(t, jwt.SigningMethodHS256, testSecret, TokenClaims{Room: "demo", Peer: "alice"})
	notYet := sign(t, jwt.SigningMethodHS256, testSecret, TokenClaims{Room: "demo", RegisteredClaims: jwt.RegisteredClaims{
		ExpiresAt: jwt.NewNumericDate(hour), NotBefore: jwt.NewNumericDate(now.Add(30 * time.Minute))}})
	noRoom := sign(t, jwt.SigningMethodHS256, testSecret, claims("", "", hour))
	// Tampered: a valid token for room "demo" whose claims were rewritten to "*".
	parts := strings.Split(valid, ".")
	forged := parts[0] + "." + strings.TrimRight(jwtSegment(`{"room":"*","peer":"alice","exp":9999999999}`), "=") + "." + parts[2]
	// Signature dropped: "header.claims." with the HS256 header.
	unsigned := parts[0] + "." + parts[1] + "."

	cases := []struct {
		name       string
		secret     []byte
		token      string
		room, peer string
		code       Code // "" for admitted
		wantPeer   string
	}{
		{"valid", testSecret, valid, "demo", "alice", "", "alice"},
		{"peer from token", testSecret, valid, "demo", "", "", "alice"},
		{"any peer", testSecret, anyPeer, "demo", "bob", "", ""},
		{"any peer, none asked", testSecret, anyPeer, "demo", "", "", ""},
		{"any room", testSecret, anyRoom, "elsewhere", "carol", "", ""},
		{"any room, one peer", testSecret, anyRoomAlice, "elsewhere", "alice", "", "alice"},
		{"any room, other peer", testSecret, anyRoomAlice, "elsewhere", "bob", CodeForbidden, ""},
		{"wrong room", testSecret, valid, "other", "alice", CodeForbidden, ""},
		{"wrong peer", testSecret, valid, "demo", "bob", CodeForbidden, ""},
		{"a room named * is not any room", testSecret, valid, "*", "alice", CodeForbidden, ""},
		{"empty room claim", testSecret, noRoom, "demo", "", CodeForbidden, ""},
		{"expired", testSecret, expired, "demo", "alice", CodeUnauthorized, ""},
		{"wrong secret", testSecret, otherSecret, "demo", "alice", CodeUnauthorized, ""},
		{"alg none", testSecret, none, "demo", "alice", CodeUnauthorized, ""},
		{"alg HS512", testSecret, hs512, "demo", "alice", CodeUnauthorized, ""},
		{"alg HS384", testSecret, hs384, "demo", "alice", CodeUnauthorized, ""},
		{"no exp", testSecret, noExp, "demo", "alice", CodeUnauthorized, ""},
		{"not yet valid", testSecret, notYet, "demo", "", CodeUnauthorized, ""},
		{"forged claims", testSecret, forged, "demo", "alice", CodeUnauthorized, ""},
		{"signature dropped", testSecret, unsigned, "demo", "alice", CodeUnauthorized, ""},
		{"no token", testSecret, "", "demo", "alice", CodeUnauthorized, ""},
		{"garbage", testSecret, "not.a.token", "demo", "alice", CodeUnauthorized, ""},
		{"one segment", testSecret, "abc", "demo", "alice", CodeUnauthorized, ""},
		{"no secret admits anyone", nil, "", "demo", "alice", "", ""},
		{"no secret ignores tokens", nil, "garbage", "demo", "alice", "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			peer, err := checkToken(c.secret, c.token, c.room, c.peer)
			if c.code == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if peer != c.wantPeer {
					t.Fatalf("peer %q, want %q", peer, c.wantPeer)
				}
				return
			}
			var pe *Error
			if !errors.As(err, &pe) || pe.Code != c.code {
				t.Fatalf("checkToken: %v, want %s", err, c.code)
			}
			if strings.Contains(pe.Message, c.token) && c.token != "" {
				t.Fatalf("the refusal echoes the token: %s", pe.Message)
			}
		})
	}
}

func jwtSegment(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// TestJoinWithToken checks tokens through Join: the token's peer becomes the
// session's peer id, and refusals keep their codes.
func TestJoinWithToken(t *testing.T) {
	b := New(Options{TokenSecret: testSecret, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	defer b.Close(ReasonKicked)
	ctx := context.Background()
	tok, _ := NewToken(testSecret, "demo", "alice", time.Hour)
	j, err := b.Join(ctx, JoinRequest{Room: "demo", Token: tok})
	if err != nil {
		t.Fatal(err)
	}
	if j.Session.Peer() != "alice" {
		t.Fatalf("peer %q, want alice from the token", j.Session.Peer())
	}
	if _, err := b.Join(ctx, JoinRequest{Room: "demo", Peer: "bob"}); AsError(err).Code != CodeUnauthorized {
		t.Fatalf("join without a token: %v", err)
	}
	if _, err := b.Join(ctx, JoinRequest{Room: "demo", Peer: "bob", Token: tok}); AsError(err).Code != CodeForbidden {
		t.Fatalf("join as bob with alice's token: %v", err)
	}
	// A resume needs the token too.
	if _, err := b.Join(ctx, JoinRequest{Room: "demo", Resume: &Resume{Session: j.Session.Secret(), LastSeq: 1}}); AsError(err).Code != CodeUnauthorized {
		t.Fatalf("resume without a token: %v", err)
	}
	if _, err := b.Join(ctx, JoinRequest{Room: "demo", Token: tok, Resume: &Resume{Session: j.Session.Secret(), LastSeq: 1}}); err != nil {
		t.Fatalf("resume with the token: %v", err)
	}
	if b.Sessions() != 1 {
		t.Fatalf("Sessions() = %d", b.Sessions())
	}
}
