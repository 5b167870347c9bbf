// Package emailconn adds the email transport to the Switchboard Go client
// (package switchboard, beside this one), for peers that have a mailbox and
// nothing else: it mails envelopes to the broker through an SMTP submission
// server and reads the broker's mail from its own mailbox over IMAP, woken
// by IDLE (RFC 2177) rather than polling.
//
// Importing the package, even blank, registers the transport under the name
// "email":
//
//	import _ "github.com/switchboard-rtc/switchboard/clients/go/emailconn"
//
//	client, err := switchboard.Dial(ctx,
//		"imap://alice%40example.com:secret@mail.example.com/INBOX"+
//			"?smtp=smtp%3A%2F%2Falice%2540example.com%3Asecret%40mail.example.com%3A587"+
//			"&broker=switchboard%40example.com",
//		switchboard.Options{Room: "demo", Peer: "alice", Transport: "email"})
//
// The URL given to Dial is the peer's mailbox, not the broker's:
// imap://user:password@host:port/MAILBOX (STARTTLS when the server offers
// it) or imaps:// for TLS; the mailbox defaults to INBOX. Its query names
// the rest, each of which may instead come from a [Config] given to
// [NewDialFunc]:
//
//   - smtp: the submission server, smtp://user:password@host:port
//     (STARTTLS when offered, AUTH PLAIN when a user is given) or
//     smtps:// for TLS. Required.
//   - broker: the broker's signaling address. Default: switchboard@localhost.
//   - from: the peer's own address. Default: the IMAP user name, when it is
//     an address.
//
// Options' NetDialContext opens the connections, and TLSConfig, if set, is
// used for TLS to both servers.
//
// # The wire
//
// A connection speaks the email transport of docs/protocol.md (section 3,
// "Email (SMTP and IMAP)"); section 6, "Email", says how this client
// behaves on it (what it reads and ignores, when it acknowledges and pings,
// its IMAP timings and when it resumes). What only concerns a program using
// the package:
//
//   - Before the welcome, the envelopes of the broker's mail are dropped (an
//     earlier connection's: on a resume the broker mails what follows
//     last_seq again after the welcome); those after it in the same mail are
//     kept.
//   - One Send is one mail, submitted on an SMTP connection of its own. The
//     mail system stores and forwards what the submission server took, so
//     the connection counts a submitted mail as sent
//     (switchboard.ConfirmingConn): the Client neither confirms it with a
//     ping nor sends it again after a resume.
//   - A mail is read within 1 MiB, 32 MIME parts and a depth of 4, as the
//     broker bounds it.
//   - Config.AckDelay (30 s) and Config.KeepAlive (4 minutes) set the
//     acknowledgement and ping timings; the connection counts as broken when
//     the broker has been silent for twice the keepalive interval and 2
//     minutes more. Recv does not return the pongs of the keepalive pings.
//     On a resume the Client drops the seqs it already has.
//
// Mail is slow: a peer on email gathers its ICE candidates before it sends
// one offer or answer (webrtcpeer.Options.GatherAll), which
// `switchboard peer -transport email` does by default.
package emailconn
