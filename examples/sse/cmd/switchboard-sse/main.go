// Command switchboard-sse is the stock switchboard binary with one more
// transport: Server-Sent Events down, POST up, for browsers (sse.js).
package main

import (
	"github.com/switchboard-rtc/switchboard/server"

	_ "github.com/switchboard-rtc/switchboard/examples/sse" // registers "sse"
)

func main() { server.Main() }
