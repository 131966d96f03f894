package validator

import (
	"context"
	"sync"

	"github.com/notatcompany/notatcompany/services/shared/orgs"
	"github.com/notatcompany/notatcompany/services/validator/decide"
	"github.com/notatcompany/notatcompany/services/validator/state"
)

// reads are the reads an evaluation makes that many contacts share: the
// organization's settings, accounts, sync users and the companies an
// account points at. A batch's reads remember them, so that a fan-out of
// 10,000 contacts under one account reads them once, not 10,000 times;
// fresh reads (nil maps) always ask the store, as the check after a
// publish must.
type reads struct {
	store *state.Store

	mu        sync.Mutex
	settings  map[string]orgs.Settings
	rows      map[string]*state.Row
	syncUsers map[string]bool
	companies map[string][]string
}

func batchReads(store *state.Store) *reads {
	return &reads{store: store, settings: map[string]orgs.Settings{}, rows: map[string]*state.Row{},
		syncUsers: map[string]bool{}, companies: map[string][]string{}}
}

func freshReads(store *state.Store) *reads { return &reads{store: store} }

// memo returns m[key], loading and keeping it on a miss; a nil map loads
// every time.
func memo[V any](r *reads, m map[string]V, key string, load func() (V, error)) (V, error) {
	if m == nil {
		return load()
	}
	r.mu.Lock()
	v, ok := m[key]
	r.mu.Unlock()
	if ok {
		return v, nil
	}
	v, err := load()
	if err != nil {
		return v, err
	}
	r.mu.Lock()
	m[key] = v
	r.mu.Unlock()
	return v, nil
}

func (r *reads) Settings(ctx context.Context, org string) (orgs.Settings, error) {
	return memo(r, r.settings, org, func() (orgs.Settings, error) { return r.store.Settings(ctx, org) })
}

// Row reads an account, opportunity or system user row (not a contact:
// each contact is read afresh).
func (r *reads) Row(ctx context.Context, org, table, id string) (*state.Row, error) {
	return memo(r, r.rows, org+"/"+table+"/"+id, func() (*state.Row, error) { return r.store.Row(ctx, org, table, id) })
}

func (r *reads) IsSyncUser(ctx context.Context, org, user string) (bool, error) {
	return memo(r, r.syncUsers, org+"/"+user, func() (bool, error) { return r.store.IsSyncUser(ctx, org, user) })
}

func (r *reads) CompanyIDsOfAccount(ctx context.Context, org string, a *decide.Account) ([]string, error) {
	if a == nil {
		return nil, nil
	}
	return memo(r, r.companies, org+"/"+a.ID, func() ([]string, error) { return r.store.CompanyIDsOfAccount(ctx, a) })
}
