package server

import (
	"io/fs"

	"github.com/switchboard-rtc/switchboard/clients/js"
)

// clientFiles is the browser client and demo page that serve puts at
// /client/ and /.
func clientFiles() fs.FS { return js.Files }
