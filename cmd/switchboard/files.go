package main

import "io/fs"

// clientFiles is the browser client and demo page that serve puts at
// /client/ and /.
func clientFiles() fs.FS { return nil }
