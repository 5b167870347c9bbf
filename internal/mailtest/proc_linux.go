package mailtest

import (
	"os/exec"
	"syscall"
	"time"
)

// procAttr puts a server in a process group of its own, so that it is
// stopped with its children, and kills it when the test's process dies.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// stopProcess ends cmd's process group with SIGTERM, then SIGKILL, and waits
// until cmd has ended (done is closed).
func stopProcess(cmd *exec.Cmd, done chan struct{}) {
	pgid := cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-done
	}
	// The master's children may outlive it for a moment; let them go.
	for i := 0; i < 100 && syscall.Kill(-pgid, 0) == nil; i++ {
		time.Sleep(50 * time.Millisecond)
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
}
