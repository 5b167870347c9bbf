package loadgen

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// numbered is the payload of relay and latency messages: a per-pair
// sequence number, a send time in ns since the run's clock base, and
// padding up to the wanted size.
type numbered struct {
	N int64 `json:"n"`
	T int64 `json:"t"`
}

// padding is sliced for every payload's pad.
var padding = strings.Repeat("x", 64<<10)

// appendNumbered appends a numbered payload of size bytes (or the least it
// can be, when size is smaller).
func appendNumbered(b []byte, n, t int64, size int) []byte {
	start := len(b)
	b = append(b, `{"n":`...)
	b = strconv.AppendInt(b, n, 10)
	b = append(b, `,"t":`...)
	b = strconv.AppendInt(b, t, 10)
	b = append(b, `,"p":"`...)
	pad := size - (len(b) - start) - 2
	pad = min(max(pad, 0), len(padding))
	b = append(b, padding[:pad]...)
	return append(b, `"}`...)
}

// Call setup messages, shaped as the browser's RTCSessionDescriptionInit
// and RTCIceCandidateInit.
var (
	offerPayload  = sessionDescription("offer")
	answerPayload = sessionDescription("answer")
	// candidates are the eight ICE candidates each side trickles.
	candidates = func() []json.RawMessage {
		c := make([]json.RawMessage, candidatesPerSide)
		for i := range c {
			typ := []string{"host", "host", "srflx", "srflx", "relay", "host", "srflx", "relay"}[i]
			c[i], _ = json.Marshal(struct {
				Candidate     string `json:"candidate"`
				SDPMid        string `json:"sdpMid"`
				SDPMLineIndex int    `json:"sdpMLineIndex"`
			}{
				Candidate: fmt.Sprintf("candidate:%d 1 udp %d 198.51.100.%d %d typ %s raddr 192.168.1.%d rport %d generation 0 ufrag EsAw network-id 1 network-cost 10",
					1467250027+i*7919, 2122260223-i*256, 10+i, 50000+i, typ, 20+i, 50000+i),
				SDPMid: "0",
			})
		}
		return c
	}()
)

// candidatesPerSide is how many candidates each side of a setup sends.
const candidatesPerSide = 8

// sessionDescription returns a plausible audio and video SDP of about
// 1.5 KB, as {"type": typ, "sdp": …}.
func sessionDescription(typ string) json.RawMessage {
	setup := "actpass"
	if typ == "answer" {
		setup = "active"
	}
	lines := []string{
		"v=0",
		"o=- 4611731400430051336 2 IN IP4 127.0.0.1",
		"s=-",
		"t=0 0",
		"a=group:BUNDLE 0 1",
		"a=extmap-allow-mixed",
		"a=msid-semantic: WMS 6d1c4d3a-5c0b-4f27-9d39-4f8a3c2f1e55",
		"m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126",
		"c=IN IP4 0.0.0.0",
		"a=rtcp:9 IN IP4 0.0.0.0",
		"a=ice-ufrag:EsAw",
		"a=ice-pwd:bP+XJMM09aR8AiX1jdukzR6Y",
		"a=ice-options:trickle",
		"a=fingerprint:sha-256 DA:7B:57:DC:28:CE:04:4F:31:79:85:C4:31:67:EB:27:58:29:ED:77:2A:0D:24:AE:ED:AD:30:BC:BD:F1:9C:02",
		"a=setup:" + setup,
		"a=mid:0",
		"a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level",
		"a=sendrecv",
		"a=msid:6d1c4d3a-5c0b-4f27-9d39-4f8a3c2f1e55 0f7c3c57-8a61-4a8e-b0a4-7f6a2e1d9c3b",
		"a=rtcp-mux",
		"a=rtpmap:111 opus/48000/2",
		"a=rtcp-fb:111 transport-cc",
		"a=fmtp:111 minptime=10;useinbandfec=1",
		"a=rtpmap:0 PCMU/8000",
		"a=rtpmap:8 PCMA/8000",
		"a=ssrc:3735928559 cname:Yq2mB4kV9tXz8sLp",
		"m=video 9 UDP/TLS/RTP/SAVPF 96 97 98 99 100 101",
		"c=IN IP4 0.0.0.0",
		"a=rtcp:9 IN IP4 0.0.0.0",
		"a=ice-ufrag:EsAw",
		"a=ice-pwd:bP+XJMM09aR8AiX1jdukzR6Y",
		"a=ice-options:trickle",
		"a=fingerprint:sha-256 DA:7B:57:DC:28:CE:04:4F:31:79:85:C4:31:67:EB:27:58:29:ED:77:2A:0D:24:AE:ED:AD:30:BC:BD:F1:9C:02",
		"a=setup:" + setup,
		"a=mid:1",
		"a=extmap:2 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time",
		"a=sendrecv",
		"a=msid:6d1c4d3a-5c0b-4f27-9d39-4f8a3c2f1e55 2b9e4f10-77c5-4d1e-a0c8-5e3b9f7d2a64",
		"a=rtcp-mux",
		"a=rtcp-rsize",
		"a=rtpmap:96 VP8/90000",
		"a=rtcp-fb:96 goog-remb",
		"a=rtcp-fb:96 transport-cc",
		"a=rtcp-fb:96 ccm fir",
		"a=rtcp-fb:96 nack",
		"a=rtcp-fb:96 nack pli",
		"a=rtpmap:97 rtx/90000",
		"a=fmtp:97 apt=96",
		"a=rtpmap:98 VP9/90000",
		"a=fmtp:98 profile-id=0",
		"a=rtpmap:100 H264/90000",
		"a=fmtp:100 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
		"a=ssrc-group:FID 2864144384 1234567890",
		"a=ssrc:2864144384 cname:Yq2mB4kV9tXz8sLp",
		"a=ssrc:1234567890 cname:Yq2mB4kV9tXz8sLp",
	}
	b, _ := json.Marshal(struct {
		Type string `json:"type"`
		SDP  string `json:"sdp"`
	}{typ, strings.Join(lines, "\r\n") + "\r\n"})
	return b
}
