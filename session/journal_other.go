//go:build !unix

package session

import "os"

// lockFile does nothing where flock(2) does not exist: keep one journal
// file per instance by configuration.
func lockFile(*os.File) error { return nil }
