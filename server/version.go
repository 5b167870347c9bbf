package server

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

func versionString() string {
	v := Version
	if bi, ok := debug.ReadBuildInfo(); ok && v == "dev" {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				v = "dev-" + s.Value[:12]
			}
		}
	}
	return fmt.Sprintf("switchboard %s (%s, protocol v1)", v, runtime.Version())
}
