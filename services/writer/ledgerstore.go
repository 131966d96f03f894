package writer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// memStore keeps a budget in this process alone.
type memStore struct {
	mu  sync.Mutex
	st  ledgerState
	rev uint64
}

func (m *memStore) load(context.Context) (ledgerState, uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.st.clone(), m.rev, nil
}

func (m *memStore) save(_ context.Context, st ledgerState, rev uint64) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if rev != m.rev {
		return false, nil
	}
	m.st, m.rev = st.clone(), m.rev+1
	return true, nil
}

func (st ledgerState) clone() ledgerState {
	st.Slots, st.Holds = slices.Clone(st.Slots), slices.Clone(st.Holds)
	return st
}

// kvStore keeps a budget in a key of a JetStream KV bucket, changed only
// by compare-and-set, so that every replica (and any other caller of
// Dataverse as the same application user) spends one budget. Each
// replica's clock places its requests in the window; a clock running
// behind adds to the newest slot rather than an older one.
type kvStore struct {
	kv  jetstream.KeyValue
	key string
	lim limits
	now func() time.Time
}

// BudgetKey is the key of an environment's and application user's budget.
func BudgetKey(url, clientID string) string {
	sum := sha256.Sum256([]byte(url + "\x00" + clientID))
	return "b" + hex.EncodeToString(sum[:16])
}

func (s *kvStore) load(ctx context.Context) (ledgerState, uint64, error) {
	e, err := s.kv.Get(ctx, s.key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return ledgerState{}, 0, nil
	}
	if err != nil {
		return ledgerState{}, 0, fmt.Errorf("read the request budget: %w", err)
	}
	var st ledgerState
	if err := json.Unmarshal(e.Value(), &st); err != nil || !st.finite() {
		// Unreadable: start again from a window spent rather than from an
		// empty one.
		k := s.lim.slotOf(s.now())
		return ledgerState{Slots: []slotUse{{Slot: k, Requests: s.lim.requests, Exec: s.lim.exec}}}, e.Revision(), nil
	}
	return st, e.Revision(), nil
}

func (s *kvStore) save(ctx context.Context, st ledgerState, rev uint64) (bool, error) {
	b, err := json.Marshal(st)
	if err != nil {
		return false, fmt.Errorf("encode the request budget: %w", err)
	}
	if rev == 0 {
		_, err = s.kv.Create(ctx, s.key, b)
	} else {
		_, err = s.kv.Update(ctx, s.key, b, rev)
	}
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, jetstream.ErrKeyExists), errors.Is(err, jetstream.ErrKeyRevisionMismatch), wrongLastSequence(err):
		return false, nil
	}
	return false, fmt.Errorf("spend the request budget: %w", err)
}

// NewLocalLedger is budget b in this process alone.
func NewLocalLedger(b Budget) *Ledger {
	return newLedger(&memStore{}, b, "local", time.Minute)
}

// NewKVLedger is the budget b of the application user clientID at the
// environment url, shared in kv by every replica; owner names this
// replica, whose requests in progress count for at most holdFor should it
// die with them.
func NewKVLedger(kv jetstream.KeyValue, url, clientID, owner string, b Budget, holdFor time.Duration) *Ledger {
	l := newLedger(nil, b, owner, holdFor)
	l.store = &kvStore{kv: kv, key: BudgetKey(url, clientID), lim: l.lim, now: func() time.Time { return l.now() }}
	return l
}
