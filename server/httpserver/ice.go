package httpserver

import (
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/switchboard-rtc/switchboard/broker"
)

// iceAnswer is the body of GET /v1/ice-servers: the same fields as the
// welcome's (docs/protocol.md, section 6).
type iceAnswer struct {
	ICEServers []broker.ICEServer `json:"ice_servers"`
	ICETTL     int64              `json:"ice_ttl,omitempty"`
}

// iceServers answers GET /v1/ice-servers: the STUN and TURN servers, with
// fresh credentials, for a client that wants them before it joins. When the
// broker has a token secret the request needs a valid join token, as a
// bearer token or ?token=.
func (s *Server) iceServers(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	token := r.URL.Query().Get("token")
	if auth := r.Header.Get("Authorization"); auth != "" {
		if t, ok := strings.CutPrefix(auth, "Bearer "); ok {
			token = strings.TrimSpace(t)
		}
	}
	peer := r.URL.Query().Get("peer")
	if peer != "" && !broker.ValidID(peer) {
		s.refuseICE(w, r, broker.Errorf(broker.CodeBadRequest, "peer must be 1 to 64 of A-Z a-z 0-9 . _ -"))
		return
	}
	tokenPeer, err := s.b.CheckToken(token, "", peer)
	if err != nil {
		s.refuseICE(w, r, err)
		return
	}
	if tokenPeer != "" {
		peer = tokenPeer
	}
	servers, ttl := s.b.ICEServers(peer)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(iceAnswer{ICEServers: servers, ICETTL: int64(ttl / time.Second)})
}

func (s *Server) refuseICE(w http.ResponseWriter, r *http.Request, err error) {
	e := broker.AsError(err)
	s.b.Logger().Info("ice-servers request refused", "code", e.Code, "error", err, "remote", r.RemoteAddr)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(e.Code.HTTPStatus())
	_, _ = w.Write(broker.ErrorFrame(e))
}
