//go:build e2e && !linux

package e2e

import "syscall"

// sysProcAttr: outside Linux there is no parent-death signal; teardown relies on TestMain.
func sysProcAttr() *syscall.SysProcAttr { return nil }
