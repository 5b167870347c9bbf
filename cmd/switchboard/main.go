// Command switchboard is the Switchboard WebRTC signaling broker.
//
//	switchboard serve [flags]     run a broker node
//	switchboard token [flags]     print a join token
//	switchboard peer [flags]      a headless WebRTC peer: call or answer, echo
//	switchboard bench [flags]     load-test a running broker
//	switchboard version           print the version
//
// Run a subcommand with -h for its flags. All of it is package server, so
// that a binary with custom transports is the same one call (see
// docs/adapters.md).
package main

import "github.com/switchboard-rtc/switchboard/server"

func main() { server.Main() }
