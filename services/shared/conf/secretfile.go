package conf

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// SecretSet holds secrets read from environment variables or from the files
// their <NAME>_FILE variables name (mounted Kubernetes secrets). A file is
// read again by Reload, so an updated Secret takes effect without a restart;
// a value from the environment never changes. The current values are
// exposed as one immutable snapshot, swapped atomically, so a reader never
// sees half a rotation. Nothing here logs or formats a secret's value.
type SecretSet struct {
	names []string
	files map[string]string // name → path, for the secrets read from files

	mu   sync.Mutex        // serializes Reload
	seen map[string]string // file content last read, applied or not
	cur  atomic.Pointer[map[string]string]
}

// Secrets reads the named secrets the way Secret does (env wins, then
// <NAME>_FILE) and returns them as a set that Reload can refresh. Problems
// are recorded in p like every other setting's.
func (p *Parser) Secrets(names ...string) *SecretSet {
	s := &SecretSet{names: names, files: map[string]string{}, seen: map[string]string{}}
	values := map[string]string{}
	for _, name := range names {
		if v, ok := p.lookup(name); ok {
			values[name] = v
			continue
		}
		path, ok := p.lookup(name + "_FILE")
		if !ok {
			continue
		}
		s.files[name] = path
		v, err := readSecretFile(path)
		if err != nil {
			p.errs = append(p.errs, fmt.Errorf("%s_FILE: %w", name, err))
			continue
		}
		values[name] = v
		s.seen[name] = v
	}
	s.cur.Store(&values)
	return s
}

func readSecretFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

// Get returns the current value of the named secret ("" when unset).
func (s *SecretSet) Get(name string) string { return (*s.cur.Load())[name] }

// Snapshot returns a copy of the current values, keyed by name.
func (s *SecretSet) Snapshot() map[string]string {
	cur := *s.cur.Load()
	out := make(map[string]string, len(cur))
	for k, v := range cur {
		out[k] = v
	}
	return out
}

// Watched reports whether any secret comes from a file, that is, whether
// Reload can ever change anything.
func (s *SecretSet) Watched() bool { return len(s.files) > 0 }

// Reload reads every secret file again. When a file's content differs from
// what was last read, apply is given the complete new set of values; only
// when apply accepts it (returns nil) does it become current. A set apply
// refused is not offered again until a file changes once more, so a bad
// Secret is reported once, not at every poll. changed names the secrets
// whose files changed (names only, never values).
func (s *SecretSet) Reload(apply func(map[string]string) error) (changed []string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	next := s.Snapshot()
	read := map[string]string{}
	var readErrs []error
	for _, name := range s.names {
		path, ok := s.files[name]
		if !ok {
			continue
		}
		v, err := readSecretFile(path)
		if err != nil {
			// A Secret volume swaps its files through a symlink; a read
			// that races the swap is retried at the next poll.
			readErrs = append(readErrs, fmt.Errorf("%s_FILE: %w", name, err))
			continue
		}
		read[name] = v
	}
	if len(readErrs) > 0 {
		return nil, fmt.Errorf("reading secrets: %w", errors.Join(readErrs...))
	}
	for _, name := range s.names {
		if v, ok := read[name]; ok && v != s.seen[name] {
			s.seen[name] = v
			next[name] = v
			changed = append(changed, name)
		}
	}
	if len(changed) == 0 {
		return nil, nil
	}
	if err := apply(next); err != nil {
		return changed, fmt.Errorf("secrets %s changed but were not applied: %w", strings.Join(changed, ", "), err)
	}
	s.cur.Store(&next)
	return changed, nil
}

// Watch calls Reload every interval until ctx ends, reporting each change
// and each problem through report (which gets names and errors, never
// values). It returns nil when ctx ends.
func (s *SecretSet) Watch(ctx context.Context, interval time.Duration, apply func(map[string]string) error, report func(changed []string, err error)) error {
	if !s.Watched() {
		<-ctx.Done()
		return nil
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if changed, err := s.Reload(apply); len(changed) > 0 || err != nil {
				report(changed, err)
			}
		}
	}
}
