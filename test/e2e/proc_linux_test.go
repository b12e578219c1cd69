//go:build e2e

package e2e

import "syscall"

// sysProcAttr asks the kernel to kill a child when the test binary dies, so that a test
// timeout or a Ctrl-C cannot leave an etcd, a kube-apiserver or a detour behind.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
