package keepalive

import (
	"encoding/json"
	"testing"
)

func TestMarker(t *testing.T) {
	m := Marker("switchboard_redis_keepalive")
	if !m.Is(m.Payload()) {
		t.Fatalf("%s does not recognise its own payload %s", m, m.Payload())
	}
	for _, p := range []string{``, `null`, `{}`, `{"switchboard_confirm":3}`, `{"switchboard_redis_keepalive":true,"x":1}`, `{"switchboard_email_keepalive":true}`, `"switchboard_redis_keepalive"`} {
		if m.Is(json.RawMessage(p)) {
			t.Errorf("%s took %q for its own", m, p)
		}
	}
}
