package emailconn

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/emersion/go-message/mail"
)

// brokerMail writes a mail as the broker does: multipart/mixed holding a
// multipart/alternative (text and JSON) and an SDP attachment.
func brokerMail(t testing.TB, from string, extra map[string]string, json string) []byte {
	t.Helper()
	var h mail.Header
	h.SetAddressList("From", []*mail.Address{{Address: from}})
	h.SetAddressList("To", []*mail.Address{{Address: "alice@localhost"}})
	h.SetSubject("[switchboard] demo: bob sent you an offer")
	h.Set(headerRoom, "demo")
	h.Set("Auto-Submitted", "auto-generated")
	for k, v := range extra {
		h.Set(k, v)
	}
	var buf bytes.Buffer
	w, err := mail.CreateWriter(&buf, h)
	if err != nil {
		t.Fatal(err)
	}
	alt, err := w.CreateInline()
	if err != nil {
		t.Fatal(err)
	}
	for _, part := range []struct{ typ, body string }{{"text/plain", "bob sent you an offer in room demo\r\n"}, {"application/json", json}} {
		var ph mail.InlineHeader
		ph.SetContentType(part.typ, map[string]string{"charset": "utf-8"})
		pw, err := alt.CreatePart(ph)
		if err != nil {
			t.Fatal(err)
		}
		pw.Write([]byte(part.body))
		pw.Close()
	}
	alt.Close()
	var ah mail.AttachmentHeader
	ah.SetContentType("application/sdp", nil)
	ah.SetFilename("offer.sdp")
	aw, err := w.CreateAttachment(ah)
	if err != nil {
		t.Fatal(err)
	}
	aw.Write([]byte("v=0\r\n"))
	aw.Close()
	w.Close()
	return buf.Bytes()
}

const offerJSON = `[{"v":1,"type":"offer","room":"demo","from":"bob","to":"alice","seq":3,"payload":{"type":"offer","sdp":"v=0\r\n"}}]`

func TestParseBrokerMail(t *testing.T) {
	envs, err := parseBrokerMail(brokerMail(t, "Switchboard@Localhost", nil, offerJSON), "switchboard@localhost")
	if err != nil {
		t.Fatal(err)
	}
	if len(envs) != 1 || envs[0].Type != "offer" || envs[0].Seq != 3 || envs[0].From != "bob" {
		t.Fatalf("got %+v", envs)
	}
}

func TestParseBrokerMailSkipsOthers(t *testing.T) {
	for name, raw := range map[string][]byte{
		"someone else":  brokerMail(t, "mallory@localhost", nil, offerJSON),
		"auto-reply":    brokerMail(t, "switchboard@localhost", map[string]string{"Auto-Submitted": "auto-replied"}, offerJSON),
		"bulk":          brokerMail(t, "switchboard@localhost", map[string]string{"Precedence": "bulk"}, offerJSON),
		"report":        []byte("From: switchboard@localhost\r\nX-Switchboard-Room: demo\r\nContent-Type: multipart/report; boundary=x\r\n\r\n--x\r\n\r\nhi\r\n--x--\r\n"),
		"no room":       []byte("From: switchboard@localhost\r\nContent-Type: application/json\r\n\r\n" + offerJSON),
		"mailer-daemon": []byte("From: MAILER-DAEMON@localhost\r\nContent-Type: text/plain\r\n\r\nundeliverable"),
	} {
		if _, err := parseBrokerMail(raw, "switchboard@localhost"); err == nil {
			t.Errorf("%s: read as the broker's", name)
		}
	}
}

func TestParseBrokerMailBounds(t *testing.T) {
	deep := "From: switchboard@localhost\r\nX-Switchboard-Room: demo\r\nContent-Type: multipart/mixed; boundary=b0\r\n\r\n"
	for i := 1; i <= maxDepth+1; i++ {
		deep += "--b" + string(rune('0'+i-1)) + "\r\nContent-Type: multipart/mixed; boundary=b" + string(rune('0'+i)) + "\r\n\r\n"
	}
	if _, err := parseBrokerMail([]byte(deep), "switchboard@localhost"); err == nil || !strings.Contains(err.Error(), "deeper") {
		t.Errorf("too deep: %v", err)
	}
	many := "From: switchboard@localhost\r\nX-Switchboard-Room: demo\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
	for i := 0; i < maxParts+1; i++ {
		many += "--b\r\nContent-Type: text/plain\r\n\r\nx\r\n"
	}
	many += "--b--\r\n"
	if _, err := parseBrokerMail([]byte(many), "switchboard@localhost"); err == nil || !strings.Contains(err.Error(), "parts") {
		t.Errorf("too many parts: %v", err)
	}
	big := brokerMail(t, "switchboard@localhost", nil, `["`+strings.Repeat("x", MaxMailBytes)+`"]`)
	if _, err := parseBrokerMail(big, "switchboard@localhost"); err == nil {
		t.Error("a mail over the size bound was read")
	}
}

func TestOutgoingMail(t *testing.T) {
	raw, err := outgoing{from: "alice@localhost", to: "switchboard@localhost", session: "s3cret",
		envs: []json.RawMessage{json.RawMessage(`{"type":"ping"}`)}}.build()
	if err != nil {
		t.Fatal(err)
	}
	r, err := mail.CreateReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	if id, err := r.Header.MessageID(); err != nil || id == "" {
		t.Errorf("Message-ID %q: %v", id, err)
	}
	if got := r.Header.Get(headerSession); got != "s3cret" {
		t.Errorf("session header %q", got)
	}
	if typ, _, _ := r.Header.ContentType(); typ != "application/json" {
		t.Errorf("Content-Type %q", typ)
	}
}

// FuzzParseBrokerMail reads arbitrary mail: it must never panic.
func FuzzParseBrokerMail(f *testing.F) {
	f.Add(brokerMail(f, "switchboard@localhost", nil, offerJSON))
	f.Add([]byte("From: switchboard@localhost\r\nX-Switchboard-Room: r\r\n\r\n[]"))
	f.Add([]byte("From: switchboard@localhost\r\nX-Switchboard-Room: r\r\nContent-Type: multipart/alternative; boundary=z\r\n\r\n--z\r\nContent-Type: application/json\r\n\r\n[{\"type\":\"pong\"}]\r\n--z--\r\n"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		_, _ = parseBrokerMail(raw, "switchboard@localhost")
	})
}
