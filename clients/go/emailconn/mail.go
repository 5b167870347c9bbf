package emailconn

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/mail"

	switchboard "github.com/switchboard-rtc/switchboard/clients/go"
)

// Bounds of the mail a connection reads (docs/protocol.md, section 3, Email).
const (
	// MaxMailBytes is the largest mail read, headers included.
	MaxMailBytes = 1 << 20
	// maxParts is the most MIME parts a mail may have, the top level included.
	maxParts = 32
	// maxDepth is the deepest a MIME part may be nested (the top level is 1).
	maxDepth = 4
	// maxHeaderBytes bounds the header block of a mail and of each part.
	maxHeaderBytes = 64 << 10
	// maxEnvelopes is the most envelopes one mail to the broker carries.
	maxEnvelopes = 64
)

// Headers of the mail format.
const (
	headerSession = "X-Switchboard-Session"
	headerRoom    = "X-Switchboard-Room"
)

// errNotFromBroker marks a mail that is not the broker's: someone else's,
// or an automatic one (a bounce, an auto-reply). It is skipped.
var errNotFromBroker = errors.New("not a mail from the broker")

// outgoing is a mail to the broker.
type outgoing struct {
	from, to string
	session  string // the X-Switchboard-Session header; empty on a join
	envs     []json.RawMessage
}

// build writes the mail: a single application/json part holding the
// envelopes as a JSON array.
func (o outgoing) build() ([]byte, error) {
	body, err := json.Marshal(o.envs)
	if err != nil {
		return nil, err
	}
	var h mail.Header
	h.SetDate(time.Now())
	h.SetAddressList("From", []*mail.Address{{Address: o.from}})
	h.SetAddressList("To", []*mail.Address{{Address: o.to}})
	h.SetSubject("switchboard")
	if err := h.GenerateMessageID(); err != nil {
		return nil, err
	}
	if o.session != "" {
		h.Set(headerSession, o.session)
	}
	h.SetContentType("application/json", map[string]string{"charset": "utf-8"})
	var buf bytes.Buffer
	w, err := mail.CreateSingleInlineWriter(&buf, h)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(body); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// parseBrokerMail reads a mail from the mailbox and returns the envelopes of
// the broker's JSON part. A mail that is not the broker's answers
// errNotFromBroker (wrapped with the reason).
func parseBrokerMail(raw []byte, broker string) ([]switchboard.Envelope, error) {
	if len(raw) > MaxMailBytes {
		return nil, fmt.Errorf("the mail is larger than %d bytes", MaxMailBytes)
	}
	ent, err := message.ReadWithOptions(bytes.NewReader(raw), &message.ReadOptions{MaxHeaderBytes: maxHeaderBytes})
	if ent == nil {
		return nil, fmt.Errorf("malformed mail header: %w", err)
	}
	h := mail.Header{Header: ent.Header}
	from, err := h.AddressList("From")
	if err != nil || len(from) != 1 || !strings.EqualFold(from[0].Address, broker) {
		return nil, fmt.Errorf("%w: From is %q", errNotFromBroker, h.Get("From"))
	}
	// The broker's own mail says Auto-Submitted: auto-generated and names
	// its room; anything else automatic is a bounce or a responder.
	if !h.Has(headerRoom) {
		return nil, fmt.Errorf("%w: no %s header", errNotFromBroker, headerRoom)
	}
	if why := automatic(h); why != "" {
		return nil, fmt.Errorf("%w: %s", errNotFromBroker, why)
	}
	body, err := jsonPart(ent)
	if err != nil {
		return nil, err
	}
	var envs []switchboard.Envelope
	if err := json.Unmarshal(body, &envs); err != nil {
		return nil, fmt.Errorf("the JSON part is not an array of envelopes: %w", err)
	}
	return envs, nil
}

// automatic tells why a mail from the broker's address is automatic in a
// way the broker's own mail never is, or "".
func automatic(h mail.Header) string {
	if as := strings.ToLower(strings.TrimSpace(h.Get("Auto-Submitted"))); as != "" && as != "no" && as != "auto-generated" {
		return "Auto-Submitted: " + as
	}
	switch p := strings.ToLower(strings.TrimSpace(h.Get("Precedence"))); p {
	case "bulk", "list", "junk", "auto_reply":
		return "Precedence: " + p
	}
	if t, _, _ := h.ContentType(); t == "multipart/report" {
		return "a delivery report"
	}
	return ""
}

// jsonPart returns the body of the first application/json part, depth-first,
// within maxParts and maxDepth; a single-part mail's body when it is
// application/json or text/plain.
func jsonPart(ent *message.Entity) ([]byte, error) {
	parts := 0
	var find func(e *message.Entity, depth int) ([]byte, error)
	find = func(e *message.Entity, depth int) ([]byte, error) {
		parts++
		if parts > maxParts {
			return nil, fmt.Errorf("more than %d MIME parts", maxParts)
		}
		if depth > maxDepth {
			return nil, fmt.Errorf("MIME parts nested deeper than %d", maxDepth)
		}
		t, _, _ := e.Header.ContentType()
		mr := e.MultipartReader()
		if mr == nil {
			if t == "application/json" || (depth == 1 && (t == "text/plain" || t == "")) {
				return io.ReadAll(e.Body)
			}
			return nil, nil
		}
		for {
			p, err := mr.NextPart()
			if errors.Is(err, io.EOF) {
				return nil, nil
			}
			if err != nil {
				return nil, fmt.Errorf("MIME part: %w", err)
			}
			if body, err := find(p, depth+1); body != nil || err != nil {
				return body, err
			}
		}
	}
	body, err := find(ent, 1)
	if err != nil {
		return nil, err
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, errors.New("no application/json part")
	}
	return body, nil
}
