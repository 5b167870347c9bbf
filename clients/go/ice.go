package switchboard

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"time"
)

// ICEServer is one STUN or TURN server, shaped exactly like the browser's
// RTCIceServer and pion/webrtc's ICEServer, as the broker hands it out
// (docs/protocol.md, section 6, ICE servers).
type ICEServer struct {
	URLs       []string `json:"urls"`
	Username   string   `json:"username,omitempty"`
	Credential string   `json:"credential,omitempty"`
}

// iceServers is the ICE part of a welcome, and the payload of an
// ice-servers answer.
type iceServers struct {
	ICEServers []ICEServer `json:"ice_servers"`
	ICETTL     int64       `json:"ice_ttl"`
}

// iceRefreshRetry is how soon an automatic refresh of ICE servers that got
// no answer is tried again.
const iceRefreshRetry = 30 * time.Second

// ICEServers returns the STUN and TURN servers the broker handed this peer,
// with the newest credentials: from the welcome, a resumed welcome, or the
// latest answer to RefreshICEServers. Empty when the broker knows none.
// The Client asks for fresh credentials by itself at three quarters of their
// lifetime, so what this returns is valid for a new peer connection.
func (c *Client) ICEServers() []ICEServer {
	c.iceMu.Lock()
	defer c.iceMu.Unlock()
	return slices.Clone(c.ice)
}

// ICEExpires returns when the credentials of ICEServers expire; the zero
// time when none do.
func (c *Client) ICEExpires() time.Time {
	c.iceMu.Lock()
	defer c.iceMu.Unlock()
	return c.iceExpires
}

// RefreshICEServers asks the broker for fresh STUN and TURN credentials (an
// ice-servers envelope) and returns them once they arrive, or when a
// resumed welcome brings fresh ones first. It fails when ctx ends or the
// Client ends.
func (c *Client) RefreshICEServers(ctx context.Context) ([]ICEServer, error) {
	c.iceMu.Lock()
	updated := c.iceUpdated
	c.iceMu.Unlock()
	if err := c.Send(ctx, Envelope{Type: TypeICEServers}); err != nil {
		return nil, err
	}
	select {
	case <-updated:
		return c.ICEServers(), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-c.done:
		return nil, c.endErr()
	}
}

// setICE takes the ICE servers of a welcome or an ice-servers answer and
// plans the next refresh.
func (c *Client) setICE(payload json.RawMessage) {
	var p iceServers
	if err := json.Unmarshal(payload, &p); err != nil || p.ICEServers == nil {
		return // a broker that hands out none, or a malformed answer: keep what there is
	}
	c.iceMu.Lock()
	defer c.iceMu.Unlock()
	c.ice = p.ICEServers
	c.iceExpires = time.Time{}
	if p.ICETTL > 0 {
		ttl := time.Duration(p.ICETTL) * time.Second
		c.iceExpires = time.Now().Add(ttl)
		c.planICERefreshLocked(ttl * 3 / 4)
	} else if c.iceTimer != nil {
		c.iceTimer.Stop()
	}
	close(c.iceUpdated)
	c.iceUpdated = make(chan struct{})
}

// planICERefreshLocked asks for fresh credentials after d, and again every
// iceRefreshRetry while no answer comes.
func (c *Client) planICERefreshLocked(d time.Duration) {
	if c.iceTimer != nil {
		c.iceTimer.Stop()
	}
	if c.iceStopped {
		return
	}
	c.iceTimer = time.AfterFunc(d, func() {
		ctx, cancel := context.WithTimeout(context.Background(), iceRefreshRetry)
		defer cancel()
		if _, err := c.RefreshICEServers(ctx); err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				c.iceMu.Lock()
				c.planICERefreshLocked(0)
				c.iceMu.Unlock()
			}
			return
		}
		c.log.Debug("ICE servers refreshed")
	})
}

// stopICE ends the automatic refreshes.
func (c *Client) stopICE() {
	c.iceMu.Lock()
	defer c.iceMu.Unlock()
	c.iceStopped = true
	if c.iceTimer != nil {
		c.iceTimer.Stop()
	}
}
