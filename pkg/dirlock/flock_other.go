//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package dirlock

import "os"

// tryLock always succeeds where flock is not available: the directory is not protected there.
func tryLock(*os.File) (bool, error) { return true, nil }
