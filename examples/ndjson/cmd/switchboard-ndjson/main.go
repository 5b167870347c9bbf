// Command switchboard-ndjson is the stock switchboard binary with one more
// transport: newline-delimited JSON over TCP. Run it as switchboard:
//
//	SWITCHBOARD_TRANSPORTS=websocket,longpoll,ndjson switchboard-ndjson serve
package main

import (
	"github.com/switchboard-rtc/switchboard/server"

	_ "github.com/switchboard-rtc/switchboard/examples/ndjson" // registers "ndjson"
)

func main() { server.Main() }
