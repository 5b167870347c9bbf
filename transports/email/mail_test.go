package email

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/mail"
)

const joinMail = "From: Alice <Alice@Example.org>\r\n" +
	"To: switchboard@localhost\r\n" +
	"Subject: switchboard\r\n" +
	"Message-ID: <m1@example.org>\r\n" +
	"Content-Type: text/plain; charset=utf-8\r\n" +
	"\r\n" +
	`{"type":"join","room":"demo","payload":{"peer":"alice"}}` + "\r\n"

func TestParseSinglePart(t *testing.T) {
	in, err := ParseMail(strings.NewReader(joinMail), 0)
	if err != nil {
		t.Fatal(err)
	}
	if in.From != "alice@example.org" || in.MessageID != "m1@example.org" || in.Session != "" || in.Automatic != "" {
		t.Fatalf("got %+v", in)
	}
	if len(in.Envelopes) != 1 || !strings.Contains(string(in.Envelopes[0]), `"join"`) {
		t.Fatalf("envelopes %q", in.Envelopes)
	}
}

func TestParseMultipartFindsFirstJSONDepthFirst(t *testing.T) {
	raw := "From: bob@example.org\r\nTo: switchboard@localhost\r\nMessage-ID: <x@y>\r\n" +
		"X-Switchboard-Session: abc\r\n" +
		"Content-Type: multipart/mixed; boundary=outer\r\n\r\n" +
		"--outer\r\nContent-Type: multipart/alternative; boundary=inner\r\n\r\n" +
		"--inner\r\nContent-Type: text/plain\r\n\r\nhello\r\n" +
		"--inner\r\nContent-Type: application/json\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
		"W3sidHlwZSI6InBpbmcifSx7InR5cGUiOiJhY2siLCJwYXlsb2FkIjp7InNlcSI6Mn19XQ==\r\n" +
		"--inner--\r\n" +
		"--outer\r\nContent-Type: application/json\r\n\r\n{\"type\":\"leave\"}\r\n" +
		"--outer--\r\n"
	in, err := ParseMail(strings.NewReader(raw), 0)
	if err != nil {
		t.Fatal(err)
	}
	if in.Session != "abc" || len(in.Envelopes) != 2 || string(in.Envelopes[0]) != `{"type":"ping"}` {
		t.Fatalf("got %+v %q", in, in.Envelopes)
	}
}

func TestParseAutomatic(t *testing.T) {
	for _, h := range []string{
		"Return-Path: <>\r\n",
		"Auto-Submitted: auto-replied\r\n",
		"Auto-Submitted: auto-generated\r\n",
		"Precedence: bulk\r\n",
		"Precedence: list\r\n",
		"Precedence: junk\r\n",
		"Precedence: auto_reply\r\n",
	} {
		in, err := ParseMail(strings.NewReader(h+joinMail), 0)
		if err != nil || in.Automatic == "" {
			t.Errorf("%q: automatic %q, err %v", h, in.Automatic, err)
		}
	}
	in, err := ParseMail(strings.NewReader("Auto-Submitted: no\r\n"+joinMail), 0)
	if err != nil || in.Automatic != "" {
		t.Errorf("Auto-Submitted: no: automatic %q, err %v", in.Automatic, err)
	}
	report := "From: MAILER-DAEMON@example.org\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n--b\r\n\r\nx\r\n--b--\r\n"
	if in, err := ParseMail(strings.NewReader(report), 0); err != nil || in.Automatic == "" {
		t.Errorf("report: %+v %v", in, err)
	}
}

func TestParseRefusals(t *testing.T) {
	hdr := "From: a@b\r\nMessage-ID: <1@b>\r\n"
	deep := hdr + "Content-Type: multipart/mixed; boundary=b1\r\n\r\n"
	for i := 2; i <= MaxDepth+1; i++ {
		deep += fmt.Sprintf("--b%d\r\nContent-Type: multipart/mixed; boundary=b%d\r\n\r\n", i-1, i)
	}
	deep += fmt.Sprintf("--b%d\r\nContent-Type: application/json\r\n\r\n{}\r\n", MaxDepth+1)
	many := hdr + "Content-Type: multipart/mixed; boundary=b\r\n\r\n" +
		strings.Repeat("--b\r\nContent-Type: text/plain\r\n\r\nx\r\n", MaxParts) +
		"--b\r\nContent-Type: application/json\r\n\r\n{}\r\n--b--\r\n"
	var arr []string
	for range MaxEnvelopesPerMail + 1 {
		arr = append(arr, `{"type":"ping"}`)
	}
	for name, c := range map[string]struct {
		raw  string
		want error
	}{
		"no from":         {"Message-ID: <1@b>\r\n\r\n{}", ErrMalformed},
		"two from":        {"From: a@b, c@d\r\n\r\n{}", ErrMalformed},
		"too large":       {hdr + "\r\n" + strings.Repeat(" ", 5000) + "{}", ErrMailTooLarge},
		"html":            {hdr + "Content-Type: text/html\r\n\r\n{}", ErrNoEnvelope},
		"empty":           {hdr + "\r\n\r\n", ErrNoEnvelope},
		"not json":        {hdr + "\r\nhello", ErrMalformed},
		"bad json":        {hdr + "\r\n{\"type\":", ErrMalformed},
		"empty array":     {hdr + "\r\n[]", ErrNoEnvelope},
		"too many":        {hdr + "\r\n[" + strings.Join(arr, ",") + "]", ErrMalformed},
		"too deep":        {deep, ErrMalformed},
		"too many parts":  {many, ErrMalformed},
		"no json part":    {hdr + "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nx\r\n--b--\r\n", ErrNoEnvelope},
		"not utf-8":       {hdr + "\r\n{\"a\":\"\xff\"}", ErrMalformed},
		"truncated parts": {hdr + "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n", ErrMalformed},
	} {
		_, err := ParseMail(strings.NewReader(c.raw), 4096)
		if !errors.Is(err, c.want) {
			t.Errorf("%s: got %v, want %v", name, err, c.want)
		}
	}
}

func TestBuildMailRoundTrip(t *testing.T) {
	offer := `{"v":1,"type":"offer","room":"demo","from":"bob","to":"alice","seq":3,"payload":{"type":"offer","sdp":"v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n` + strings.Repeat("a=x-long-attribute-line\\r\\n", 100) + `"}}`
	cand := `{"v":1,"type":"candidate","room":"demo","from":"bob","seq":4,"payload":null}`
	for _, frames := range [][][]byte{{[]byte(cand)}, {[]byte(offer), []byte(cand)}} {
		raw, err := BuildMail(Outgoing{From: "switchboard@localhost", To: "alice@example.org", Room: "demo",
			MessageID: "sb.abc.2@localhost", Thread: "sb.abc.1@localhost", Frames: frames})
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range bytes.Split(raw, []byte("\r\n")) {
			if len(line) > 998 {
				t.Fatalf("line of %d bytes", len(line))
			}
		}
		in, err := ParseMail(bytes.NewReader(raw), 0)
		if err != nil {
			t.Fatal(err)
		}
		// The broker's own mail is automatic to the broker: it must never
		// be handled as a peer's.
		if in.Automatic == "" || in.From != "switchboard@localhost" || in.MessageID != "sb.abc.2@localhost" {
			t.Fatalf("got %+v", in)
		}
		ent, err := message.Read(bytes.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		h := mail.Header{Header: ent.Header}
		refs, _ := h.MsgIDList("References")
		if len(refs) != 1 || refs[0] != "sb.abc.1@localhost" || h.Get(HeaderRoom) != "demo" {
			t.Fatalf("header %v", h)
		}
		body, err := findEnvelopes(ent)
		if err != nil {
			t.Fatal(err)
		}
		var got []json.RawMessage
		if err := json.Unmarshal(body, &got); err != nil || len(got) != len(frames) {
			t.Fatalf("json %s: %v", body, err)
		}
		for i := range frames {
			if string(got[i]) != string(frames[i]) {
				t.Fatalf("frame %d: %s != %s", i, got[i], frames[i])
			}
		}
		// An offer travels as an application/sdp attachment too.
		top, _, _ := ent.Header.ContentType()
		wantTop := "multipart/alternative"
		if len(frames) == 2 {
			wantTop = "multipart/mixed"
		}
		if top != wantTop {
			t.Fatalf("top-level %s, want %s", top, wantTop)
		}
		if len(frames) == 2 {
			ent, _ = message.Read(bytes.NewReader(raw))
			mr := mail.NewReader(ent)
			sawSDP := false
			for {
				p, err := mr.NextPart()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				if ah, ok := p.Header.(*mail.AttachmentHeader); ok {
					name, _ := ah.Filename()
					b, _ := io.ReadAll(p.Body)
					sawSDP = name == "offer.sdp" && bytes.HasPrefix(b, []byte("v=0\r\n"))
				}
			}
			if !sawSDP {
				t.Fatal("no offer.sdp attachment")
			}
		}
	}
}

// An error mail that answers no session still says it is the broker's.
func TestBuildMailWithoutRoom(t *testing.T) {
	raw, err := BuildMail(Outgoing{From: "switchboard@localhost", To: "a@b", MessageID: "x@y",
		Frames: [][]byte{[]byte(`{"v":1,"type":"error","payload":{"code":"unauthorized","message":"no"}}`)}})
	if err != nil {
		t.Fatal(err)
	}
	ent, err := message.Read(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	h := mail.Header{Header: ent.Header}
	subj, _ := h.Subject()
	if !h.Has(HeaderRoom) || subj != "[switchboard] error unauthorized: no" {
		t.Fatalf("header %v, subject %q", h.Has(HeaderRoom), subj)
	}
}
