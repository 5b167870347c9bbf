package broker

import (
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Options configures a Broker. The zero value of every field means its default.
type Options struct {
	// NodeID names this node in a cluster. Default: a random id.
	NodeID string

	// TokenSecret is the HS256 key that join tokens are signed with. Empty:
	// no tokens are needed and anyone may join (logged loudly at start).
	TokenSecret []byte

	// MaxEnvelope is the largest envelope a peer may send, in bytes.
	// Default: 65536 (64 KiB).
	MaxEnvelope int

	// Rate is how many envelopes per second a session may send, sustained;
	// Burst is how many it may send at once. Defaults: 1000 and 2000.
	// A negative Rate turns the limit off.
	Rate  float64
	Burst int

	// JoinRate is how many joins per second one client address may make,
	// sustained (resumes included); JoinBurst is how many it may make at
	// once. Defaults: 10 and 100. A negative JoinRate turns the limit off.
	// See JoinRequest.Client.
	JoinRate  float64
	JoinBurst int

	// MaxPeersPerRoom is the most peers one room holds. Default: 256.
	MaxPeersPerRoom int

	// MaxSessions is the most sessions this node holds. Default: 100000.
	MaxSessions int

	// MailboxMessages and MailboxBytes bound a session's mailbox. Defaults:
	// 1024 messages and 1 MiB (1048576 bytes), whichever comes first.
	MailboxMessages int
	MailboxBytes    int

	// ResumeWindow is how long a session whose connection dropped may
	// resume. Default: 30 s.
	ResumeWindow time.Duration

	// HeldMessages and HeldBytes bound the messages this node holds for
	// peers that are not in their room (the offline hold), all senders
	// together; each sender's are bounded as its mailbox is (MailboxMessages
	// and MailboxBytes). Defaults: 65536 messages and 64 MiB.
	HeldMessages int
	HeldBytes    int

	// OfflineHold is how long a message to a peer that is not in the room
	// waits for it. Default: 10 s.
	OfflineHold time.Duration

	// DedupWindow is how long an envelope id is remembered to drop retries.
	// Default: 60 s.
	DedupWindow time.Duration

	// ICE is the STUN and TURN servers handed to every peer in its welcome
	// and on request. Default: none.
	ICE ICE

	// Backplane connects this node to the others of a cluster.
	// Default: a MemoryBackplane of its own (a single node).
	Backplane Backplane

	// Store keeps sessions and mailboxes for the whole cluster, so that a
	// session outlives its node. Default: none (mailboxes in memory).
	Store Store

	// Logger receives the broker's structured logs. Default: slog.Default().
	Logger *slog.Logger

	// LogEnvelopes logs every envelope at debug level, for tracing a call.
	LogEnvelopes bool

	// Registerer receives the broker's Prometheus metrics.
	// Default: none (metrics are kept but not exported).
	Registerer prometheus.Registerer
}

func (o *Options) init() {
	if o.NodeID == "" {
		o.NodeID = randomID(6)
	}
	if o.MaxEnvelope <= 0 {
		o.MaxEnvelope = 64 << 10
	}
	if o.Rate == 0 {
		o.Rate = 1000
	}
	if o.Burst <= 0 {
		o.Burst = 2000
	}
	if o.JoinRate == 0 {
		o.JoinRate = 10
	}
	if o.JoinBurst <= 0 {
		o.JoinBurst = 100
	}
	if o.MaxPeersPerRoom <= 0 {
		o.MaxPeersPerRoom = 256
	}
	if o.MaxSessions <= 0 {
		o.MaxSessions = 100000
	}
	if o.MailboxMessages <= 0 {
		o.MailboxMessages = 1024
	}
	if o.MailboxBytes <= 0 {
		o.MailboxBytes = 1 << 20
	}
	if o.HeldMessages <= 0 {
		o.HeldMessages = 65536
	}
	if o.HeldBytes <= 0 {
		o.HeldBytes = 64 << 20
	}
	if o.ResumeWindow <= 0 {
		o.ResumeWindow = 30 * time.Second
	}
	if o.OfflineHold <= 0 {
		o.OfflineHold = 10 * time.Second
	}
	if o.DedupWindow <= 0 {
		o.DedupWindow = 60 * time.Second
	}
	if o.ICE.TURNTTL <= 0 {
		o.ICE.TURNTTL = DefaultTURNTTL
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}
