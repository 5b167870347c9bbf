package mailserver

import (
	"errors"

	"github.com/emersion/go-imap"
	"github.com/emersion/go-imap/commands"
	imapserver "github.com/emersion/go-imap/server"
)

// storeExtension replaces go-imap v1's STORE handler, which writes a flag
// of the connection that the server's update goroutine reads without a lock
// (a data race). That flag only keeps a STORE's own flag updates from its
// connection, and this backend sends no flag updates, so this STORE does the
// same without it.
type storeExtension struct{}

func (storeExtension) Capabilities(imapserver.Conn) []string { return nil }

func (storeExtension) Command(name string) imapserver.HandlerFactory {
	if name != "STORE" {
		return nil
	}
	return func() imapserver.Handler { return &storeCommand{} }
}

type storeCommand struct{ commands.Store }

func (cmd *storeCommand) Handle(conn imapserver.Conn) error    { return cmd.handle(false, conn) }
func (cmd *storeCommand) UidHandle(conn imapserver.Conn) error { return cmd.handle(true, conn) }

func (cmd *storeCommand) handle(uid bool, conn imapserver.Conn) error {
	ctx := conn.Context()
	if ctx.Mailbox == nil {
		return imapserver.ErrNoMailboxSelected
	}
	if ctx.MailboxReadOnly {
		return imapserver.ErrMailboxReadOnly
	}
	op, _, err := imap.ParseFlagsOp(cmd.Item)
	if err != nil {
		return err
	}
	var flags []string
	if list, ok := cmd.Value.([]any); ok {
		if flags, err = imap.ParseStringList(list); err != nil {
			return err
		}
	} else if s, err := imap.ParseString(cmd.Value); err == nil {
		flags = []string{s}
	} else {
		return errors.New("mailserver: STORE needs a flag or a list of flags")
	}
	for i, f := range flags {
		flags[i] = imap.CanonicalFlag(f)
	}
	return ctx.Mailbox.UpdateMessagesFlags(uid, cmd.SeqSet, op, flags)
}
