// Package email carries signaling over email (docs/protocol.md,
// section 3, Email): peers mail envelopes to the broker's address and get
// mail back. The broker receives as an SMTP server (RFC 5321) or as an IMAP
// client (RFC 3501) of an existing mailbox, woken by IDLE (RFC 2177), and
// sends through SMTP submission (RFC 6409). It registers itself as "email".
//
// The mail format is the codec of this package: ParseMail reads a peer's
// mail, BuildMail writes the broker's (MIME, RFC 2045–2049, through
// go-message). The embedded mail server that makes the transport work with
// nothing else installed is in the mailserver subpackage.
package email
