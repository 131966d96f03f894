package state

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/errgroup"

	"github.com/notatcompany/notatcompany/services/shared/bus"
	"github.com/notatcompany/notatcompany/services/shared/orgs"
)

// The scope cache: sync users, organizations' settings and whether system
// users are disabled, read by every evaluation, kept in memory from KV
// watches instead of read from KV each time. They are few (users, not
// contacts) and change seldom.
//
// A cache must never decide on data older than what it decides about:
//
//   - Floor: every read of the cache names the least position of each
//     source it must reflect, and waits until the watch is past it. An
//     evaluation that an admin change triggered passes the revision the
//     change was stored at; one that replaces a decision passes the
//     positions that decision was made on (it carries them), so that a
//     replica whose watch is behind never decides on less than another
//     replica already did.
//   - Lease: the cache also reflects every write done more than ScopeLease
//     before it is read. A probe asks the server whether anything was
//     written after what the watch delivered (one small request per
//     source, answered "nothing" almost always), at most once per
//     ScopeLease, and only when a read needs it.
//   - Settle: a change of one of these sources is evaluated once more,
//     ScopeSettle after the first time (see the validator). That pass lists
//     the contacts again and reads their last decisions, so it catches any
//     evaluation that read the cache within the lease of the change and
//     published before it; one that published later checks the cache
//     again after publishing, by when the lease covers the change.

// ScopeLease bounds how far the cache may be behind the buckets when read.
const ScopeLease = 250 * time.Millisecond

// ScopeSettle is how long after a scope source changes its contacts are
// evaluated once more: longer than the lease, and shorter than the first
// redelivery delay of the validator's consumers (1 s less a fifth), so
// that any redelivery of the change, after a failure too, comes later.
const ScopeSettle = 500 * time.Millisecond

// Scope sources, in the order of a Floor.
const (
	SourceSyncUsers = iota
	SourceSettings
	SourceSystemUsers
	scopeSources
)

// Floor is, per scope source, the stream position a read must reflect.
type Floor [scopeSources]uint64

// Covers reports whether f is at g or past it in every source.
func (f Floor) Covers(g Floor) bool {
	for i := range f {
		if f[i] < g[i] {
			return false
		}
	}
	return true
}

// Max is the higher of each position of f and g.
func (f Floor) Max(g Floor) Floor {
	for i := range f {
		f[i] = max(f[i], g[i])
	}
	return f
}

// scopeSource is one watched bucket, or part of one.
type scopeSource struct {
	bucket string
	filter string // the key filter
	kv     jetstream.KeyValue
}

func (s scopeSource) subjectFilter() string { return "$KV." + s.bucket + "." + s.filter }

type scopeEntry struct {
	rev  uint64
	data []byte // the value as stored; nil once deleted
}

// ScopeCache is the scope cache of one store.
type ScopeCache struct {
	direct  *directGets
	sources [scopeSources]scopeSource

	mu       sync.Mutex
	changed  chan struct{} // closed and replaced at every change of pos
	entries  [scopeSources]map[string]scopeEntry
	pos      [scopeSources]uint64 // the highest revision the watch delivered
	ready    [scopeSources]bool   // the watch delivered the initial values
	verified time.Time            // when the last complete probe was sent
	probing  chan struct{}        // closed when the probe in flight ends
	probeErr error
	now      func() time.Time
}

func newScopeCache(ctx context.Context, direct *directGets, syncUsers, settings, rows jetstream.KeyValue) (*ScopeCache, error) {
	c := &ScopeCache{direct: direct, changed: make(chan struct{}), now: time.Now}
	c.sources[SourceSyncUsers] = scopeSource{bucket: bus.BucketSyncUsers, filter: ">", kv: syncUsers}
	c.sources[SourceSettings] = scopeSource{bucket: bus.BucketOrgs, filter: ">", kv: settings}
	c.sources[SourceSystemUsers] = scopeSource{bucket: bus.BucketRows, filter: "*.systemuser.*", kv: rows}
	// The watches last as long as the connection: a context that ends
	// would end them, and ctx may be only the store's opening's.
	ctx = context.WithoutCancel(ctx)
	for i := range c.sources {
		c.entries[i] = map[string]scopeEntry{}
		w, err := c.sources[i].kv.Watch(ctx, c.sources[i].filter)
		if err != nil {
			return nil, fmt.Errorf("watch %s: %w", c.sources[i].bucket, err)
		}
		go c.follow(i, w)
	}
	return c, nil
}

// follow applies what the watch of source src delivers until it ends
// (the connection closed).
func (c *ScopeCache) follow(src int, w jetstream.KeyWatcher) {
	for e := range w.Updates() {
		c.mu.Lock()
		if e == nil {
			c.ready[src] = true
		} else {
			if e.Operation() == jetstream.KeyValuePut {
				c.entries[src][e.Key()] = scopeEntry{rev: e.Revision(), data: e.Value()}
			} else {
				c.entries[src][e.Key()] = scopeEntry{rev: e.Revision()}
			}
			c.pos[src] = max(c.pos[src], e.Revision())
		}
		close(c.changed)
		c.changed = make(chan struct{})
		c.mu.Unlock()
	}
}

// Scope is a read of the cache: the positions it reflects, and what each
// key it was asked held (its revision, for the check after publishing).
type Scope struct {
	c  *ScopeCache
	At Floor
}

// Read returns the cache once it reflects floor and every write older
// than ScopeLease.
func (c *ScopeCache) Read(ctx context.Context, floor Floor) (*Scope, error) {
	for {
		c.mu.Lock()
		ok := true
		for i := range floor {
			ok = ok && c.ready[i] && c.pos[i] >= floor[i]
		}
		fresh := c.now().Sub(c.verified) < ScopeLease
		wait, at := c.changed, Floor(c.pos)
		c.mu.Unlock()
		if ok && fresh {
			return &Scope{c: c, At: at}, nil
		}
		if !ok {
			// The watch is behind: it delivers soon, or a probe finds
			// that there is nothing more to deliver.
			select {
			case <-wait:
				continue
			case <-time.After(ScopeLease / 5):
			case <-ctx.Done():
				return nil, fmt.Errorf("scope cache: %w", ctx.Err())
			}
		}
		// Complete as of a probe sent now: that covers floor too, whose
		// writes were all done before this read began.
		if err := c.probe(ctx); err != nil {
			return nil, err
		}
		c.mu.Lock()
		fresh, at = c.now().Sub(c.verified) < ScopeLease, Floor(c.pos)
		c.mu.Unlock()
		if fresh {
			return &Scope{c: c, At: at}, nil
		}
	}
}

// Sync brings the cache up to now, and returns the positions it then
// reflects: a floor for evaluations that must see everything done before
// they began (a chunk of a fan-out, a change of a system user).
func (c *ScopeCache) Sync(ctx context.Context) (Floor, error) {
	c.mu.Lock()
	begun := c.now()
	c.mu.Unlock()
	for {
		if err := c.probe(ctx); err != nil {
			return Floor{}, err
		}
		c.mu.Lock()
		verified, at := c.verified, Floor(c.pos)
		c.mu.Unlock()
		// A probe that was in flight already may have been sent earlier.
		if !verified.Before(begun) {
			return at, nil
		}
	}
}

// probe asks each source's stream for a message after what the watch
// delivered; when none is there, the cache is complete as of when the
// probe was sent. One probe is in flight at a time; readers share it.
func (c *ScopeCache) probe(ctx context.Context) error {
	c.mu.Lock()
	if c.probing != nil {
		done := c.probing
		c.mu.Unlock()
		select {
		case <-done:
		case <-ctx.Done():
			return fmt.Errorf("scope cache: %w", ctx.Err())
		}
		c.mu.Lock()
		err := c.probeErr
		c.mu.Unlock()
		return err
	}
	done := make(chan struct{})
	c.probing = done
	c.mu.Unlock()

	err := c.probeAll(ctx)
	c.mu.Lock()
	c.probing, c.probeErr = nil, err
	close(done)
	c.mu.Unlock()
	return err
}

func (c *ScopeCache) probeAll(ctx context.Context) error {
	for {
		sent := c.now()
		c.mu.Lock()
		pos, ready := c.pos, c.ready
		c.mu.Unlock()
		behind := -1
		var g errgroup.Group
		var found [scopeSources]uint64
		for i, src := range c.sources {
			g.Go(func() error {
				a, err := c.direct.request(ctx, "KV_"+src.bucket, pageRequest{Seq: pos[i] + 1, NextFor: src.subjectFilter(), Batch: 1}, 1)
				if err != nil {
					return fmt.Errorf("probe %s: %w", src.bucket, err)
				}
				found[i] = uint64(a.pos)
				return nil
			})
		}
		if err := g.Wait(); err != nil {
			return err
		}
		for i := range found {
			if found[i] > pos[i] || !ready[i] {
				behind = i
			}
		}
		if behind < 0 {
			c.mu.Lock()
			c.verified = sent
			c.mu.Unlock()
			return nil
		}
		// The watch has yet to deliver what the probe found: wait for it.
		if err := c.waitPast(ctx, found); err != nil {
			return err
		}
	}
}

// waitPast waits until the watch of every source delivered its initial
// values and is at found or beyond.
func (c *ScopeCache) waitPast(ctx context.Context, found [scopeSources]uint64) error {
	deadline := time.After(10 * time.Second)
	for {
		c.mu.Lock()
		ok := true
		for i := range found {
			ok = ok && c.ready[i] && c.pos[i] >= found[i]
		}
		wait := c.changed
		c.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-wait:
		case <-deadline:
			return errors.New("scope cache: the watch does not deliver what the bucket holds")
		case <-ctx.Done():
			return fmt.Errorf("scope cache: %w", ctx.Err())
		}
	}
}

// entry returns key's entry of src; rev 0 when there is none.
func (s *Scope) entry(src int, key string) scopeEntry {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	return s.c.entries[src][key]
}

// ScopeKey is a key a scope read depended on, with the revision it had.
type ScopeKey struct {
	Source int
	Key    string
	Rev    uint64
}

// IsSyncUser reports whether user is an enabled sync user of org and not
// disabled in Dynamics, and the keys that says it.
func (s *Scope) IsSyncUser(org, user string) (bool, []ScopeKey, error) {
	if user == "" {
		return false, nil, nil
	}
	key := orgs.SyncUserKey(org, user)
	e := s.entry(SourceSyncUsers, key)
	deps := []ScopeKey{{Source: SourceSyncUsers, Key: key, Rev: e.rev}}
	if e.data == nil {
		return false, deps, nil
	}
	var su orgs.SyncUser
	if err := json.Unmarshal(e.data, &su); err != nil {
		return false, deps, fmt.Errorf("decode sync user: %w", err)
	}
	if !su.Enabled {
		return false, deps, nil
	}
	rk := rowKey(org, "systemuser", user)
	re := s.entry(SourceSystemUsers, rk)
	deps = append(deps, ScopeKey{Source: SourceSystemUsers, Key: rk, Rev: re.rev})
	if re.data == nil {
		return true, deps, nil
	}
	row, err := decodeRow(re.data)
	if err != nil {
		return false, deps, fmt.Errorf("decode system user: %w", err)
	}
	return !row.Disabled(), deps, nil
}

// Settings returns an organization's settings (the zero value when none),
// and the key that holds them.
func (s *Scope) Settings(org string) (orgs.Settings, ScopeKey, error) {
	key := orgs.SettingsKey(org)
	e := s.entry(SourceSettings, key)
	dep := ScopeKey{Source: SourceSettings, Key: key, Rev: e.rev}
	var o orgs.Settings
	if e.data == nil {
		return o, dep, nil
	}
	if err := json.Unmarshal(e.data, &o); err != nil {
		return o, dep, fmt.Errorf("decode settings: %w", err)
	}
	return o, dep, nil
}

// Changed reports whether a key read at some revision holds another now.
func (s *Scope) Changed(k ScopeKey) bool { return s.entry(k.Source, k.Key).rev != k.Rev }

// String renders a floor for a message header: "su:sy:st" positions.
func (f Floor) String() string {
	return fmt.Sprintf("%d:%d:%d", f[SourceSyncUsers], f[SourceSettings], f[SourceSystemUsers])
}

// ParseFloor reads what String wrote; the zero floor for anything else.
func ParseFloor(s string) Floor {
	var f Floor
	parts := strings.Split(s, ":")
	if len(parts) != scopeSources {
		return f
	}
	for i, p := range parts {
		var n uint64
		if _, err := fmt.Sscan(p, &n); err != nil {
			return Floor{}
		}
		f[i] = n
	}
	return f
}
