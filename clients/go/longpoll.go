package switchboard

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

func init() { RegisterTransport("longpoll", dialLongPoll) }

// maxBodySize is the largest long-poll response the client reads.
const maxBodySize = 16 << 20

// pollSlack is how much longer than its wait a long-poll request may take
// before it is taken as broken.
const pollSlack = 15 * time.Second

// longPollConn is a Conn over HTTP long-polling: POST /v1/sessions to join,
// POST .../messages to send, GET .../messages to receive, DELETE to leave.
type longPollConn struct {
	opts     *Options
	messages string // .../v1/sessions/{session}/messages
	session  string // .../v1/sessions/{session}
	after    atomic.Uint64

	ctx    context.Context // ended by Close: aborts every request
	cancel context.CancelFunc

	closeOnce sync.Once
}

var _ ConfirmingConn = (*longPollConn)(nil)

func dialLongPoll(ctx context.Context, base *url.URL, join Envelope, opts *Options) (Conn, Envelope, error) {
	switch base.Scheme {
	case "http", "https":
	default:
		return nil, Envelope{}, fmt.Errorf("switchboard: unsupported URL scheme %q for long-polling", base.Scheme)
	}
	body, err := json.Marshal(join)
	if err != nil {
		return nil, Envelope{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, opts.HandshakeTimeout)
	defer cancel()
	resp, err := doRequest(ctx, opts, http.MethodPost, base.JoinPath("v1", "sessions").String(), body)
	if err != nil {
		return nil, Envelope{}, fmt.Errorf("switchboard: longpoll: join: %w", err)
	}
	// 201 answers a new session; a resumed one may be answered 200.
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		return nil, Envelope{}, statusError(resp, "join")
	}
	var welcome Envelope
	err = decodeBody(resp, &welcome)
	if err != nil {
		return nil, Envelope{}, fmt.Errorf("switchboard: longpoll: join: %w", err)
	}
	if welcome.Type != TypeWelcome {
		return nil, Envelope{}, fmt.Errorf("switchboard: longpoll: broker answered join with %q", welcome.Type)
	}
	var w Welcome
	if err := welcome.Decode(&w); err != nil || w.Session == "" {
		return nil, Envelope{}, fmt.Errorf("switchboard: longpoll: welcome without a session")
	}
	sess := base.JoinPath("v1", "sessions", w.Session)
	c := &longPollConn{
		opts:     opts,
		session:  sess.String(),
		messages: sess.JoinPath("messages").String(),
	}
	var resume joinPayload
	_ = join.Decode(&resume)
	switch {
	case welcome.Seq != 0:
		c.after.Store(welcome.Seq)
	case resume.Resume != nil:
		c.after.Store(resume.Resume.LastSeq)
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	return c, welcome, nil
}

func doRequest(ctx context.Context, opts *Options, method, u string, body []byte) (*http.Response, error) {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, r)
	if err != nil {
		return nil, err
	}
	for k, vs := range opts.Header {
		req.Header[k] = append([]string(nil), vs...)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	return opts.HTTPClient.Do(req)
}

// statusError turns an unexpected answer into an error: the broker's *Error
// when the body is an error envelope. It closes the body.
func statusError(resp *http.Response, what string) error {
	status := resp.Status
	if perr := errorFromResponse(resp); perr != nil {
		return perr
	}
	return fmt.Errorf("switchboard: longpoll: %s: unexpected %s", what, status)
}

func decodeBody(resp *http.Response, v any) error {
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBodySize))
	if err != nil {
		return err
	}
	return json.Unmarshal(data, v)
}

// merge returns a context that ends when either ctx or the connection ends.
func (c *longPollConn) merge(ctx context.Context, timeout time.Duration) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	stop := context.AfterFunc(c.ctx, cancel)
	return ctx, func() { stop(); cancel() }
}

// ConfirmsSends marks longPollConn as a ConfirmingConn: a 202 means the broker
// has the envelopes.
func (c *longPollConn) ConfirmsSends() {}

// Send posts the envelopes as one JSON array.
func (c *longPollConn) Send(ctx context.Context, envs []Envelope) error {
	body, err := json.Marshal(envs)
	if err != nil {
		return err
	}
	ctx, cancel := c.merge(ctx, c.opts.WriteTimeout)
	defer cancel()
	resp, err := doRequest(ctx, c.opts, http.MethodPost, c.messages, body)
	if err != nil {
		return fmt.Errorf("switchboard: longpoll: send: %w", err)
	}
	if resp.StatusCode != http.StatusAccepted {
		return statusError(resp, "send")
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxBodySize))
	resp.Body.Close()
	return nil
}

// Recv polls for the messages after the last one it returned, which
// acknowledges everything up to that one.
func (c *longPollConn) Recv(ctx context.Context) ([]Envelope, error) {
	wait := c.opts.PollWait
	for {
		after := c.after.Load()
		u := c.messages + "?after=" + strconv.FormatUint(after, 10) +
			"&wait=" + strconv.Itoa(int(wait/time.Second))
		rctx, cancel := c.merge(ctx, wait+pollSlack)
		resp, err := doRequest(rctx, c.opts, http.MethodGet, u, nil)
		if err != nil {
			cancel()
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, fmt.Errorf("switchboard: longpoll: poll: %w", err)
		}
		if resp.StatusCode != http.StatusOK {
			err := statusError(resp, "poll")
			cancel()
			return nil, err
		}
		var envs []Envelope
		err = decodeBody(resp, &envs)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, fmt.Errorf("switchboard: longpoll: poll: %w", err)
		}
		if len(envs) == 0 {
			continue
		}
		for _, env := range envs {
			if env.Seq > after {
				after = env.Seq
			}
		}
		c.after.Store(after)
		return envs, nil
	}
}

// Ack does nothing: the next poll acknowledges.
func (c *longPollConn) Ack(context.Context, uint64) error { return nil }

// Close aborts the requests in flight and, with leave set, deletes the
// session.
func (c *longPollConn) Close(leave bool) error {
	var err error
	c.closeOnce.Do(func() {
		c.cancel()
		if !leave {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), c.opts.WriteTimeout)
		defer cancel()
		resp, rerr := doRequest(ctx, c.opts, http.MethodDelete, c.session, nil)
		if rerr != nil {
			err = fmt.Errorf("switchboard: longpoll: leave: %w", rerr)
			return
		}
		if resp.StatusCode != http.StatusNoContent && resp.StatusCode != http.StatusOK {
			err = statusError(resp, "leave")
			var pe *Error
			if errors.As(err, &pe) && pe.Code == CodeSessionExpired {
				err = nil
			}
			return
		}
		resp.Body.Close()
	})
	return err
}
