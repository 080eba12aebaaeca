package faulttest

import (
	"bytes"
	"os/exec"
	"sync"
	"testing"
)

// FreezeFiles makes files unwritable for every process, root included,
// with chattr +i, even through descriptors already open: writes then fail
// with EPERM, as on a file system remounted read-only. It returns the
// function that undoes it, which also runs when the test ends. The test is
// skipped where chattr is missing or not permitted (it needs
// CAP_LINUX_IMMUTABLE).
//
// Do not freeze a SQLite -shm file: SQLite maps it into memory, and a write
// to a frozen mapping kills the process with SIGBUS.
func FreezeFiles(t testing.TB, paths ...string) (thaw func()) {
	t.Helper()
	var once sync.Once
	thaw = func() {
		once.Do(func() {
			for _, p := range paths {
				if out, err := exec.Command("chattr", "-i", p).CombinedOutput(); err != nil {
					t.Errorf("chattr -i %s: %v %s", p, err, bytes.TrimSpace(out))
				}
			}
		})
	}
	for i, p := range paths {
		if out, err := exec.Command("chattr", "+i", p).CombinedOutput(); err != nil {
			for _, done := range paths[:i] {
				_ = exec.Command("chattr", "-i", done).Run()
			}
			t.Skipf("cannot make %s immutable here (chattr +i: %v %s): needs root or CAP_LINUX_IMMUTABLE", p, err, bytes.TrimSpace(out))
		}
	}
	t.Cleanup(thaw)
	return thaw
}
