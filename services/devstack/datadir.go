package devstack

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// ErrDataDirInUse: another devstack holds the data directory.
var ErrDataDirInUse = errors.New("a devstack is running on this data directory")

// lockName is the file a running devstack holds locked in its data
// directory, so that a second one (or make clean) cannot use the same
// JetStream store and journal underneath it.
const lockName = "devstack.lock"

// Clean removes the devstack's data directory (JetStream store, stand-in
// rows, generated secrets): the next start is a first start. It refuses
// while a devstack runs on it.
func Clean(dir string, stdout io.Writer) error {
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		fmt.Fprintf(stdout, "%s does not exist: nothing to remove\n", dir)
		return nil
	}
	release, err := lockDataDir(dir)
	if err != nil {
		return err
	}
	release()
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove %s: %w", dir, err)
	}
	fmt.Fprintf(stdout, "removed %s: the next start is a first one (new keys unless the environment sets them, an empty JetStream, only the seeded stand-in rows)\n", dir)
	return nil
}

// lockPath is the lock file of dir.
func lockPath(dir string) string { return filepath.Join(dir, lockName) }
