package broker

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"strconv"
	"time"
)

// ICEServer is one STUN or TURN server as a peer connection takes it, shaped
// like the browser's RTCIceServer (and pion's webrtc.ICEServer).
type ICEServer struct {
	URLs       []string `json:"urls"`
	Username   string   `json:"username,omitempty"`
	Credential string   `json:"credential,omitempty"`
}

// ICE is the STUN and TURN servers the broker hands every peer: in its
// welcome, and again whenever it asks with an ice-servers envelope
// (docs/protocol.md). The zero value hands out none.
type ICE struct {
	// Servers are handed out as they are: STUN servers, or TURN servers
	// with long-lived credentials.
	Servers []ICEServer

	// TURNURLs are TURN servers that take credentials of the TURN REST API
	// scheme (coturn's use-auth-secret): each peer is handed the username
	// "<expiry unix time>:<peer>" and, as credential, the base64 of the
	// HMAC-SHA1 of that username under TURNSecret. Empty: none.
	TURNURLs []string

	// TURNSecret is the secret the TURN servers share with the broker
	// (coturn's static-auth-secret). It is a credential: never log it.
	TURNSecret []byte

	// TURNTTL is how long the handed-out TURN credentials are valid.
	// Default: 1 h.
	TURNTTL time.Duration
}

// DefaultTURNTTL is how long TURN credentials are valid when ICE.TURNTTL is 0.
const DefaultTURNTTL = time.Hour

// ServersFor returns the servers for peer at now, TURN credentials minted
// afresh, and how long those credentials are valid (0 when none expire).
// The result is never nil.
func (c *ICE) ServersFor(peer string, now time.Time) ([]ICEServer, time.Duration) {
	out := make([]ICEServer, 0, len(c.Servers)+1)
	out = append(out, c.Servers...)
	if len(c.TURNURLs) == 0 || len(c.TURNSecret) == 0 {
		return out, 0
	}
	ttl := c.TURNTTL
	if ttl <= 0 {
		ttl = DefaultTURNTTL
	}
	user, cred := TURNCredential(c.TURNSecret, peer, now.Add(ttl))
	out = append(out, ICEServer{URLs: c.TURNURLs, Username: user, Credential: cred})
	return out, ttl
}

// TURNCredential returns a TURN REST API username and credential for peer
// that TURN servers sharing secret accept until expires: the username is
// "<expiry unix time>:<peer>" ("<expiry>" alone for an empty peer), the
// credential base64(HMAC-SHA1(secret, username)).
func TURNCredential(secret []byte, peer string, expires time.Time) (username, credential string) {
	username = strconv.FormatInt(expires.Unix(), 10)
	if peer != "" {
		username += ":" + peer
	}
	mac := hmac.New(sha1.New, secret)
	mac.Write([]byte(username))
	return username, base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// icePayload is the part of a welcome, and the whole of an ice-servers
// answer, that tells a peer its servers.
type icePayload struct {
	ICEServers []ICEServer `json:"ice_servers"`
	ICETTL     int64       `json:"ice_ttl,omitempty"` // seconds the credentials are valid; absent: they do not expire
}

func (b *Broker) icePayload(peer string) icePayload {
	servers, ttl := b.opts.ICE.ServersFor(peer, time.Now())
	return icePayload{ICEServers: servers, ICETTL: int64(ttl / time.Second)}
}

// ICEServers returns the servers for peer, TURN credentials minted afresh,
// and how long those are valid (0 when none expire): what an HTTP
// transport answers a peer that asks before it joins.
func (b *Broker) ICEServers(peer string) ([]ICEServer, time.Duration) {
	return b.opts.ICE.ServersFor(peer, time.Now())
}

// CheckToken verifies a join token as Join does, for room and peer (an
// empty one is not checked: the token need only be valid), and returns the
// peer the token names, if any. Without a token secret it admits anything.
// Refusals are *Error values: unauthorized or forbidden.
func (b *Broker) CheckToken(token, room, peer string) (string, error) {
	return checkToken(b.opts.TokenSecret, token, room, peer)
}

// iceAnswer is the ice-servers envelope that answers a peer's request.
func (b *Broker) iceAnswer(s *Session) []byte {
	payload, _ := json.Marshal(b.icePayload(s.peer))
	return (&Envelope{Type: TypeICEServers, Payload: payload}).Encode()
}
