package email

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/mail"
)

// Bounds of the mail format (docs/protocol.md, section 3, Email).
const (
	// DefaultMaxMailBytes is the largest mail read, headers included.
	DefaultMaxMailBytes = 1 << 20
	// MaxParts is the most MIME parts a mail may have, the top level included.
	MaxParts = 32
	// MaxDepth is the deepest a MIME part may be nested (the top level is 1).
	MaxDepth = 4
	// MaxEnvelopesPerMail is the most envelopes one mail may carry.
	MaxEnvelopesPerMail = 64
	// maxHeaderBytes bounds the header block of a mail and of each part.
	maxHeaderBytes = 64 << 10
)

// Headers of the mail format.
const (
	HeaderSession = "X-Switchboard-Session"
	HeaderRoom    = "X-Switchboard-Room"
)

// Errors of the mail codec. A mail that fails with any of them, past its
// header, has an Incoming with the sender's address for an error mail.
var (
	ErrMailTooLarge = errors.New("email: mail is too large")
	ErrMalformed    = errors.New("email: malformed mail")
	ErrNoEnvelope   = errors.New("email: no envelope in the mail")
)

// Incoming is what the broker reads of a mail a peer sent.
type Incoming struct {
	// From is the bare address of From, lower-cased.
	From string
	// MessageID is the Message-ID without angle brackets; empty if none.
	MessageID string
	// Session is the X-Switchboard-Session header, trimmed; empty if none.
	Session string
	// Automatic, when not empty, says why the mail is automatic (a bounce,
	// an auto-reply, a list) and must be ignored without an answer.
	Automatic string
	// Envelopes are the JSON envelopes the mail carries, in order.
	Envelopes []json.RawMessage
}

// ParseMail reads a mail of at most maxBytes bytes (0: DefaultMaxMailBytes)
// from r. It returns an Incoming as soon as the header could be read, with
// an error when the body could not: errors.Is matches ErrMailTooLarge,
// ErrMalformed or ErrNoEnvelope. An automatic mail (Incoming.Automatic) is
// returned without its body read. It never panics on any input.
func ParseMail(r io.Reader, maxBytes int) (*Incoming, error) {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxMailBytes
	}
	raw, err := io.ReadAll(io.LimitReader(r, int64(maxBytes)+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	tooLarge := len(raw) > maxBytes
	if tooLarge {
		raw = raw[:maxBytes]
	}
	ent, err := message.ReadWithOptions(bytes.NewReader(raw), &message.ReadOptions{MaxHeaderBytes: maxHeaderBytes})
	if ent == nil {
		return nil, fmt.Errorf("%w: header: %v", ErrMalformed, err)
	}
	h := mail.Header{Header: ent.Header}
	in := &Incoming{Automatic: automatic(h)}
	from, ferr := h.AddressList("From")
	if ferr != nil || len(from) != 1 || !strings.Contains(from[0].Address, "@") {
		return nil, fmt.Errorf("%w: From must name exactly one address", ErrMalformed)
	}
	in.From = strings.ToLower(from[0].Address)
	if id, err := h.MessageID(); err == nil {
		in.MessageID = id
	} else if v := strings.TrimSpace(h.Get("Message-Id")); v != "" {
		in.MessageID = strings.Trim(v, "<>")
	}
	in.Session = strings.TrimSpace(h.Get(HeaderSession))
	if in.Automatic != "" {
		return in, nil
	}
	if tooLarge {
		return in, fmt.Errorf("%w: the limit is %d bytes", ErrMailTooLarge, maxBytes)
	}
	body, err := findEnvelopes(ent)
	if err != nil {
		return in, err
	}
	in.Envelopes, err = splitEnvelopes(body)
	return in, err
}

// automatic tells why a mail is automatic, or "" if a person (or a peer) sent it.
func automatic(h mail.Header) string {
	if rp := strings.TrimSpace(h.Get("Return-Path")); rp == "<>" || (h.Has("Return-Path") && strings.Trim(rp, "<> \t") == "") {
		return "null reverse-path"
	}
	if as := strings.ToLower(strings.TrimSpace(h.Get("Auto-Submitted"))); as != "" && !strings.HasPrefix(as, "no") {
		return "Auto-Submitted: " + as
	}
	switch p := strings.ToLower(strings.TrimSpace(h.Get("Precedence"))); p {
	case "bulk", "list", "junk", "auto_reply":
		return "Precedence: " + p
	}
	if t, _, _ := h.ContentType(); t == "multipart/report" {
		return "a delivery or disposition report"
	}
	return ""
}

// findEnvelopes returns the JSON of the mail: the body of a text/plain or
// application/json single-part mail, or the first application/json part
// found depth-first, within MaxParts and MaxDepth.
func findEnvelopes(ent *message.Entity) ([]byte, error) {
	t, _, _ := ent.Header.ContentType()
	if t == "" {
		t = "text/plain"
	}
	if !strings.HasPrefix(t, "multipart/") {
		if t != "text/plain" && t != "application/json" {
			return nil, fmt.Errorf("%w: a single-part mail must be text/plain or application/json, not %s", ErrNoEnvelope, t)
		}
		return readBody(ent.Body)
	}
	parts := 1
	var walk func(e *message.Entity, depth int) ([]byte, error)
	walk = func(e *message.Entity, depth int) ([]byte, error) {
		mr := e.MultipartReader()
		if mr == nil {
			return nil, nil
		}
		for {
			p, err := mr.NextPart()
			if errors.Is(err, io.EOF) {
				return nil, nil
			}
			if p == nil {
				return nil, fmt.Errorf("%w: MIME part: %v", ErrMalformed, err)
			}
			parts++
			if parts > MaxParts {
				return nil, fmt.Errorf("%w: more than %d MIME parts", ErrMalformed, MaxParts)
			}
			pt, _, _ := p.Header.ContentType()
			switch {
			case strings.HasPrefix(pt, "multipart/"):
				if depth+1 > MaxDepth {
					return nil, fmt.Errorf("%w: MIME parts nested deeper than %d", ErrMalformed, MaxDepth)
				}
				if body, err := walk(p, depth+1); body != nil || err != nil {
					return body, err
				}
			case pt == "application/json":
				return readBody(p.Body)
			}
		}
	}
	body, err := walk(ent, 1)
	if err != nil {
		return nil, err
	}
	if body == nil {
		return nil, fmt.Errorf("%w: no application/json part", ErrNoEnvelope)
	}
	return body, nil
}

func readBody(r io.Reader) ([]byte, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("%w: body: %v", ErrMalformed, err)
	}
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return nil, fmt.Errorf("%w: the body is empty", ErrNoEnvelope)
	}
	return b, nil
}

// splitEnvelopes reads one envelope object or an array of them.
func splitEnvelopes(body []byte) ([]json.RawMessage, error) {
	if !utf8.Valid(body) {
		return nil, fmt.Errorf("%w: the JSON is not UTF-8", ErrMalformed)
	}
	switch body[0] {
	case '{':
		if !json.Valid(body) {
			return nil, fmt.Errorf("%w: the body is not a JSON object", ErrMalformed)
		}
		return []json.RawMessage{body}, nil
	case '[':
		var list []json.RawMessage
		if err := json.Unmarshal(body, &list); err != nil {
			return nil, fmt.Errorf("%w: the body is not a JSON array of envelopes", ErrMalformed)
		}
		if len(list) == 0 {
			return nil, fmt.Errorf("%w: the array is empty", ErrNoEnvelope)
		}
		if len(list) > MaxEnvelopesPerMail {
			return nil, fmt.Errorf("%w: %d envelopes in one mail, at most %d", ErrMalformed, len(list), MaxEnvelopesPerMail)
		}
		return list, nil
	}
	return nil, fmt.Errorf("%w: the body is not a JSON envelope or array of envelopes", ErrMalformed)
}

// Outgoing is a mail the broker sends to a peer.
type Outgoing struct {
	From, To  string // bare addresses
	Room      string
	MessageID string // without angle brackets
	// Thread is the Message-ID of the session's first mail, named in
	// In-Reply-To and References; empty on the first mail.
	Thread string
	Date   time.Time
	// Frames are the envelopes, as JSON, in order; at least one.
	Frames [][]byte
}

// BuildMail writes o as a mail of the format: multipart/alternative with a
// readable text/plain part and an application/json part holding the array of
// envelopes, inside multipart/mixed with one application/sdp attachment per
// offer or answer when there are any.
func BuildMail(o Outgoing) ([]byte, error) {
	if len(o.Frames) == 0 {
		return nil, errors.New("email: a mail needs at least one envelope")
	}
	var h mail.Header
	h.SetAddressList("From", []*mail.Address{{Address: o.From}})
	h.SetAddressList("To", []*mail.Address{{Address: o.To}})
	date := o.Date
	if date.IsZero() {
		date = time.Now()
	}
	h.SetDate(date)
	h.SetMessageID(o.MessageID)
	if o.Thread != "" {
		h.SetMsgIDList("In-Reply-To", []string{o.Thread})
		h.SetMsgIDList("References", []string{o.Thread})
	}
	h.Set(HeaderRoom, o.Room)
	h.Set("Auto-Submitted", "auto-generated")

	var text strings.Builder
	var sdps []sdpFile
	summaries := make([]string, 0, len(o.Frames))
	for _, f := range o.Frames {
		s, sdp := describe(f, o.Room)
		summaries = append(summaries, s)
		text.WriteString(s)
		text.WriteString("\n")
		if sdp != nil {
			sdps = append(sdps, *sdp)
		}
	}
	subject := summaries[0]
	if len(summaries) > 1 {
		subject = fmt.Sprintf("%s (and %d more)", subject, len(summaries)-1)
	}
	if o.Room != "" {
		subject = o.Room + ": " + subject
	}
	h.SetSubject("[switchboard] " + subject)
	array := make([]byte, 0, 2+len(o.Frames)*256)
	array = append(array, '[')
	for i, f := range o.Frames {
		if i > 0 {
			array = append(array, ',')
		}
		array = append(array, f...)
	}
	array = append(array, ']')

	var buf bytes.Buffer
	writeAlternative := func(iw *mail.InlineWriter) error {
		var th mail.InlineHeader
		th.SetContentType("text/plain", map[string]string{"charset": "utf-8"})
		w, err := iw.CreatePart(th)
		if err != nil {
			return err
		}
		if _, err := io.WriteString(w, text.String()); err != nil {
			return err
		}
		if err := w.Close(); err != nil {
			return err
		}
		var jh mail.InlineHeader
		jh.SetContentType("application/json", nil)
		jh.Set("Content-Transfer-Encoding", "quoted-printable")
		if w, err = iw.CreatePart(jh); err != nil {
			return err
		}
		if _, err := w.Write(array); err != nil {
			return err
		}
		if err := w.Close(); err != nil {
			return err
		}
		return iw.Close()
	}
	if len(sdps) == 0 {
		iw, err := mail.CreateInlineWriter(&buf, h)
		if err != nil {
			return nil, err
		}
		if err := writeAlternative(iw); err != nil {
			return nil, err
		}
		return buf.Bytes(), nil
	}
	mw, err := mail.CreateWriter(&buf, h)
	if err != nil {
		return nil, err
	}
	iw, err := mw.CreateInline()
	if err != nil {
		return nil, err
	}
	if err := writeAlternative(iw); err != nil {
		return nil, err
	}
	for _, s := range sdps {
		var ah mail.AttachmentHeader
		ah.SetContentType("application/sdp", nil)
		ah.SetFilename(s.name)
		w, err := mw.CreateAttachment(ah)
		if err != nil {
			return nil, err
		}
		if _, err := io.WriteString(w, s.sdp); err != nil {
			return nil, err
		}
		if err := w.Close(); err != nil {
			return nil, err
		}
	}
	if err := mw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

type sdpFile struct{ name, sdp string }

// describe returns a line a person can read about one envelope, and the SDP
// attachment of an offer or answer.
func describe(frame []byte, room string) (string, *sdpFile) {
	var e struct {
		Type    string          `json:"type"`
		From    string          `json:"from"`
		Room    string          `json:"room"`
		Payload json.RawMessage `json:"payload"`
	}
	_ = json.Unmarshal(frame, &e)
	if e.Room != "" {
		room = e.Room
	}
	var p struct {
		Peer    string `json:"peer"`
		SDP     string `json:"sdp"`
		Code    string `json:"code"`
		Message string `json:"message"`
		Reason  string `json:"reason"`
	}
	_ = json.Unmarshal(e.Payload, &p)
	from := e.From
	if from == "" {
		from = "someone"
	}
	switch e.Type {
	case "welcome":
		return fmt.Sprintf("you joined room %s as %s", room, p.Peer), nil
	case "peer-joined":
		return fmt.Sprintf("%s joined room %s", p.Peer, room), nil
	case "peer-left":
		return fmt.Sprintf("%s left room %s (%s)", p.Peer, room, p.Reason), nil
	case "error":
		return fmt.Sprintf("error %s: %s", p.Code, p.Message), nil
	case "offer", "answer":
		line := fmt.Sprintf("%s sent you an %s in room %s", from, e.Type, room)
		if p.SDP != "" {
			return line, &sdpFile{name: e.Type + ".sdp", sdp: p.SDP}
		}
		return line, nil
	case "candidate":
		return fmt.Sprintf("%s sent you a network candidate in room %s", from, room), nil
	case "bye":
		return fmt.Sprintf("%s ended the call in room %s", from, room), nil
	case "message":
		return fmt.Sprintf("%s sent you a message in room %s", from, room), nil
	case "pong":
		return "pong", nil
	}
	return fmt.Sprintf("%s from %s in room %s", e.Type, from, room), nil
}
