//go:build unix

package session

import (
	"os"
	"syscall"
)

// lockFile takes an exclusive lock on f that the kernel releases when the
// process ends, however it ends (kill -9 included).
func lockFile(f *os.File) error {
	return syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
}
