//go:build unix

package admission

import (
	"syscall"
	"time"
)

// cpuTime is the CPU time the process has used, user and system, all
// threads: unlike ns/op it does not grow when other processes take the CPU.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
