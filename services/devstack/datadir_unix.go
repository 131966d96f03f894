//go:build unix

package devstack

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// lockDataDir takes dir's lock without waiting; the kernel releases it
// when the process ends, however it ends.
func lockDataDir(dir string) (release func(), err error) {
	f, err := os.OpenFile(lockPath(dir), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock the data directory: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w (%s): stop it first", ErrDataDirInUse, dir)
		}
		return nil, fmt.Errorf("lock the data directory: %w", err)
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		_ = f.Close()
	}, nil
}
