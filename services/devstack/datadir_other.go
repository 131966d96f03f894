//go:build !unix

package devstack

// lockDataDir does not lock where flock is not available: two devstacks
// on one data directory are then the user's to avoid.
func lockDataDir(string) (func(), error) { return func() {}, nil }
