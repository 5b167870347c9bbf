//go:build !linux

package mailtest

import (
	"os/exec"
	"syscall"
)

// procAttr is nothing off Linux, where the servers do not run (need skips).
func procAttr() *syscall.SysProcAttr { return nil }

// stopProcess kills cmd and waits until it has ended (done is closed).
func stopProcess(cmd *exec.Cmd, done chan struct{}) {
	_ = cmd.Process.Kill()
	<-done
}
