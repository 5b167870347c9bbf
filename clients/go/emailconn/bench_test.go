package emailconn_test

import (
	"context"
	"strings"
	"testing"
	"time"

	switchboard "github.com/switchboard-rtc/switchboard/clients/go"
	"github.com/switchboard-rtc/switchboard/clients/go/internal/emailrig"
)

// benchSDP is an SDP of the size a data-channel-only offer with its
// gathered candidates has.
var benchSDP = "v=0\r\n" + strings.Repeat("a=candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host\r\n", 16)

// BenchmarkOfferAnswerOverEmail measures the offer-to-answer round trip of
// a peer on email: its offer is mailed to the broker, which relays it to a
// peer on WebSocket that answers at once; the answer is mailed back (after
// the broker's batch delay, 250 ms by default) and read from the peer's
// mailbox on IMAP IDLE. One op is one round trip. With Dovecot and Postfix,
// the broker reading its own Dovecot mailbox on IDLE (imap) or taking mail
// from Postfix as an SMTP server (smtp), and with the broker's embedded
// mail server alone (embedded). Dovecot tells an idling client of new mail
// 500 ms after it arrives (a delay built into it), once per mailbox a mail
// passes through.
func BenchmarkOfferAnswerOverEmail(b *testing.B) {
	for _, mode := range []emailrig.Mode{emailrig.IMAP, emailrig.SMTP, emailrig.Embedded} {
		b.Run(string(mode), func(b *testing.B) {
			r := emailrig.Start(b, mode, emailrig.Options{}, "alice")
			alice := dialEmail(b, r, "alice", switchboard.Options{})
			bob := dialWebSocket(b, r, "bob")
			await(b, alice, switchboard.TypePeerJoined)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go func() {
				for {
					env, err := bob.Recv(ctx)
					if err != nil {
						return
					}
					if env.Type == switchboard.TypeOffer {
						_ = bob.SendAnswer(ctx, env.From, switchboard.SessionDescription{SDP: benchSDP})
					}
				}
			}()
			var total time.Duration
			b.ResetTimer()
			for range b.N {
				start := time.Now()
				if err := alice.SendOffer(ctx, "bob", switchboard.SessionDescription{SDP: benchSDP}); err != nil {
					b.Fatal(err)
				}
				await(b, alice, switchboard.TypeAnswer)
				total += time.Since(start)
			}
			b.StopTimer()
			b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms/roundtrip")
		})
	}
}
