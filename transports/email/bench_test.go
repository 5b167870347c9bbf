package email

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
)

// BenchmarkParseMail reads a peer's mail of one answer and three candidates.
func BenchmarkParseMail(b *testing.B) {
	envs := []string{`{"type":"answer","to":"bob","payload":{"type":"answer","sdp":"` + strings.Repeat(`a=x\r\n`, 200) + `"}}`}
	for i := range 3 {
		envs = append(envs, fmt.Sprintf(`{"type":"candidate","to":"bob","payload":{"candidate":"candidate:%d 1 udp 1 127.0.0.1 5000 typ host","sdpMid":"0","sdpMLineIndex":0}}`, i))
	}
	raw := peerMail("alice@localhost", DefaultAddress, "0123456789abcdef0123456789abcdef", envs...)
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseMail(bytes.NewReader(raw), 0); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBuildMail writes the broker's mail of an offer and three candidates.
func BenchmarkBuildMail(b *testing.B) {
	frames := [][]byte{[]byte(`{"v":1,"type":"offer","room":"demo","from":"bob","to":"alice","seq":3,"payload":{"type":"offer","sdp":"` + strings.Repeat(`a=x\r\n`, 200) + `"}}`)}
	for i := range 3 {
		frames = append(frames, []byte(fmt.Sprintf(`{"v":1,"type":"candidate","room":"demo","from":"bob","to":"alice","seq":%d,"payload":null}`, 4+i)))
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := BuildMail(Outgoing{From: DefaultAddress, To: "alice@localhost", Room: "demo", MessageID: "sb.x.2@localhost", Thread: "sb.x.1@localhost", Frames: frames}); err != nil {
			b.Fatal(err)
		}
	}
}
