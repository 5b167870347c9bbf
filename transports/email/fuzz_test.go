package email

import (
	"bytes"
	"strings"
	"testing"
)

// FuzzParseMail feeds ParseMail arbitrary mail: it must never panic, and
// what it accepts must hold within the bounds.
func FuzzParseMail(f *testing.F) {
	f.Add([]byte(joinMail))
	f.Add([]byte("From: a@b\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: application/json\r\nContent-Transfer-Encoding: base64\r\n\r\nW10=\r\n--b--\r\n"))
	f.Add([]byte("From: a@b\r\nContent-Type: multipart/alternative; boundary=\"x\"\r\n\r\n--x\r\nContent-Type: multipart/mixed; boundary=y\r\n\r\n--y\r\nContent-Type: application/json\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n[{\"type\":\"ping\"}=\r\n]\r\n--y--\r\n--x--\r\n"))
	f.Add([]byte("Return-Path: <>\r\nFrom: MAILER-DAEMON@x\r\n\r\n"))
	f.Add([]byte("From: =?utf-8?q?=C3=A9?= <a@b>\r\nMessage-ID: <<>>\r\n\r\n[{},{},1]"))
	raw, _ := BuildMail(Outgoing{From: "switchboard@localhost", To: "a@b", Room: "r", MessageID: "1@x",
		Frames: [][]byte{[]byte(`{"type":"answer","payload":{"type":"answer","sdp":"v=0\r\n"}}`)}})
	f.Add(raw)
	f.Add(bytes.ReplaceAll(raw, []byte("Auto-Submitted"), []byte("X-Nothing")))
	f.Fuzz(func(t *testing.T, data []byte) {
		in, err := ParseMail(bytes.NewReader(data), 4096)
		if in == nil {
			if err == nil {
				t.Fatal("no mail and no error")
			}
			return
		}
		if in.From == "" || in.From != strings.ToLower(in.From) {
			t.Fatalf("From %q", in.From)
		}
		if err == nil && in.Automatic == "" && (len(in.Envelopes) == 0 || len(in.Envelopes) > MaxEnvelopesPerMail) {
			t.Fatalf("%d envelopes", len(in.Envelopes))
		}
	})
}
