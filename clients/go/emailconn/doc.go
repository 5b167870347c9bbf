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
// A connection speaks docs/protocol.md, section 3, "Email (SMTP and IMAP)",
// as the broker's transports/email implements it:
//
//   - It logs in to the mailbox and selects it; mail already there is not
//     read. Then it mails the join (a single application/json part, no
//     session header) and reads the mailbox until a mail from the broker
//     holds the welcome, or the error that refuses the join. Envelopes of
//     the broker's mail before the welcome are dropped (an earlier
//     connection's: on a resume the broker mails what follows last_seq
//     again after the welcome); those after it in the same mail are kept.
//   - Every later mail carries X-Switchboard-Session. One Send is one mail
//     (of at most 64 envelopes), submitted on an SMTP connection of its own.
//     The mail system stores and forwards what the submission server took,
//     so the connection counts a submitted mail as sent
//     (switchboard.ConfirmingConn): the Client neither confirms it with a
//     ping nor sends it again after a resume.
//   - Only the broker's mail is read: From the broker's address with an
//     X-Switchboard-Room header; its Auto-Submitted: auto-generated is
//     expected. Other mail, bounces and automatic replies included, is left
//     alone. The envelopes are the JSON array of the first application/json
//     part, depth-first, within 1 MiB, 32 parts and a depth of 4. Reading a
//     mail flags it \Seen.
//   - Acknowledgements go with the next mail sent, or on their own after
//     30 s (Config.AckDelay), or at once when 128 envelopes wait for one (the
//     broker mails at most 512 ahead of the last acknowledgement). A connection that has mailed nothing, or heard
//     nothing, for 4 minutes (Config.KeepAlive) mails a ping, so that the
//     broker's idle timeout for email (10 minutes) never ends a live peer;
//     the pong is not returned by Recv.
//
// # Losses and resumes
//
// Each IMAP command, IDLE included, has 60 s to complete; IDLE is renewed
// every 30 s, so a dead IMAP connection is noticed within a minute. When the
// connection fails (the server restarted, the network broke), or the broker
// has been silent for twice the keepalive interval and 2 minutes more,
// Recv fails and the Client dials a new connection that joins with resume
// {session, last_seq}; the broker mails everything after last_seq again,
// and the Client drops the seqs it already has.
//
// Mail is slow: a peer on email gathers its ICE candidates before it sends
// one offer or answer (webrtcpeer.Options.GatherAll), which
// `switchboard peer -transport email` does by default.
package emailconn
