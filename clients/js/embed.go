// Package js holds the Switchboard browser client and its demo page as files, for the
// broker to serve: switchboard.js (an ES module, no build step) and its type declarations
// switchboard.d.ts at /client/, and the demo page (demo/index.html, demo.js, demo.css) at /.
// The demo imports the client as "/client/switchboard.js".
package js

import "embed"

// Files is the client and the demo page: switchboard.js, switchboard.d.ts and demo/.
// It is read-only and safe for concurrent use.
//
//go:embed switchboard.js switchboard.d.ts demo
var Files embed.FS
