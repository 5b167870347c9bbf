//go:build unix

package loadgen

import "syscall"

// raiseFileLimit raises the soft limit on open files to the hard limit: a
// run holds a socket per simulated peer, and 10,000 of them pass the usual
// soft limit of 1,024. (The Go runtime does the same at start-up on some
// systems; doing it here does not depend on that.)
func raiseFileLimit() {
	var l syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l) != nil || l.Cur >= l.Max {
		return
	}
	l.Cur = l.Max
	syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
}
