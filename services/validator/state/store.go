package state

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	eventsv1 "github.com/notatcompany/notatcompany/proto/notatcompany/events/v1"
	"github.com/notatcompany/notatcompany/services/shared/bus"
)

// Store is the validator's state in JetStream KV.
type Store struct {
	rows      map[string]jetstream.KeyValue // by table
	members   jetstream.KeyValue
	companies jetstream.KeyValue
	index     jetstream.KeyValue
	syncUsers jetstream.KeyValue
	orgs      jetstream.KeyValue
	cols      Columns
	// The stream under the members bucket, and the member keys stream,
	// whose messages an erasure removes.
	memberStream, keyStream jetstream.Stream
	js                      jetstream.JetStream
	// The streams under the index and contacts buckets: edges are purged
	// from the first; every contact of an organization is listed from the
	// second's subjects.
	indexStream, contactStream jetstream.Stream
	// direct reads many keys, and index edges under many prefixes, in one
	// request each.
	direct *directGets
	names  *nameCounts
	scope  *ScopeCache
}

// Open binds the store to the buckets bus.Declare created.
func Open(ctx context.Context, js jetstream.JetStream, cols Columns) (*Store, error) {
	s := &Store{rows: map[string]jetstream.KeyValue{}, cols: cols, js: js}
	bind := func(name string) (jetstream.KeyValue, error) {
		kv, err := js.KeyValue(ctx, name)
		if err != nil {
			return nil, fmt.Errorf("bind bucket %s: %w", name, err)
		}
		return kv, nil
	}
	var err error
	for table, bucket := range map[string]string{"contact": bus.BucketContacts, "account": bus.BucketAccounts,
		"opportunity": bus.BucketRows, "systemuser": bus.BucketRows, "connection": bus.BucketRows} {
		if s.rows[table], err = bind(bucket); err != nil {
			return nil, err
		}
	}
	for dst, name := range map[*jetstream.KeyValue]string{
		&s.members: bus.BucketMembers, &s.companies: bus.BucketCompanies,
		&s.index: bus.BucketIndex, &s.syncUsers: bus.BucketSyncUsers, &s.orgs: bus.BucketOrgs,
	} {
		if *dst, err = bind(name); err != nil {
			return nil, err
		}
	}
	if s.indexStream, err = js.Stream(ctx, "KV_"+bus.BucketIndex); err != nil {
		return nil, fmt.Errorf("bind the index stream: %w", err)
	}
	if s.contactStream, err = js.Stream(ctx, "KV_"+bus.BucketContacts); err != nil {
		return nil, fmt.Errorf("bind the contacts stream: %w", err)
	}
	if s.memberStream, err = js.Stream(ctx, "KV_"+bus.BucketMembers); err != nil {
		return nil, fmt.Errorf("bind the members stream: %w", err)
	}
	if s.keyStream, err = js.Stream(ctx, bus.StreamMemberKeys); err != nil {
		return nil, fmt.Errorf("bind the member keys stream: %w", err)
	}
	if s.direct, err = newDirectGets(js); err != nil {
		return nil, err
	}
	if s.names, err = openNames(ctx, js, s.direct); err != nil {
		return nil, err
	}
	if s.scope, err = newScopeCache(ctx, s.direct, s.syncUsers, s.orgs, s.rows["systemuser"]); err != nil {
		return nil, err
	}
	return s, nil
}

// Scope is the store's scope cache: sync users, settings and system users.
func (s *Store) Scope() *ScopeCache { return s.scope }

// messageTableRead is the message name of a change the sync workers read
// from a table (crmsync.MessageSync), not a webhook's.
const messageTableRead = "Sync"

// rowKey is the key of a row: contacts and accounts have buckets of their
// own; opportunities, system users and connections share one, told apart
// by table.
func rowKey(org, table, id string) string {
	if table == "contact" || table == "account" {
		return bus.Token(org) + "." + bus.Token(id)
	}
	return bus.Token(org) + "." + table + "." + bus.Token(id)
}

// ApplyChange folds a CRM change into its row, the indexes and, for a
// contact, the name counts. It returns the row before and after (nil when
// absent) and whether it changed.
func (s *Store) ApplyChange(ctx context.Context, ch *eventsv1.CrmChange) (before, after *Row, changed bool, err error) {
	before, after, changed, err = s.applyChange(ctx, ch)
	// When the change moved what the counts follow; when it changed
	// nothing (a redelivery finishes what a failed attempt began); and on
	// every table read, so that a back-fill counts a contact stored before
	// counts were kept.
	if err == nil && ch.GetTable() == "contact" && (!changed || ch.GetMessageName() == messageTableRead || s.NameCountsMoved(before, after)) {
		err = s.countContact(ctx, ch.GetOrganizationId(), ch.GetRowId())
	}
	return before, after, changed, err
}

func (s *Store) applyChange(ctx context.Context, ch *eventsv1.CrmChange) (before, after *Row, changed bool, err error) {
	kv, ok := s.rows[ch.GetTable()]
	if !ok {
		return nil, nil, false, nil
	}
	extra := s.cols.Extra(ch.GetTable())
	org := ch.GetOrganizationId()
	err = casUpdate(ctx, kv, rowKey(org, ch.GetTable(), ch.GetRowId()), func(cur []byte) ([]byte, error) {
		before, after, changed = nil, nil, false
		if cur != nil {
			var err error
			if before, err = decodeRow(cur); err != nil {
				return nil, fmt.Errorf("decode row: %w", err)
			}
		}
		after, changed = Apply(before, ch, extra...)
		data, err := json.Marshal(after)
		if err != nil {
			return nil, err
		}
		// Stored even when no value changed: a newer version of the same
		// value must still beat an older change that arrives later.
		if cur != nil && bytes.Equal(cur, data) {
			return nil, nil
		}
		return data, nil
	})
	if err != nil || !changed {
		return before, after, changed, err
	}
	return before, after, true, s.reindex(ctx, s.rowEdges(org, before), s.rowEdges(org, after), func(ctx context.Context) ([]string, error) {
		now, err := s.Row(ctx, org, ch.GetTable(), ch.GetRowId())
		return s.rowEdges(org, now), err
	})
}

// Row returns a CRM row, or nil when unknown.
func (s *Store) Row(ctx context.Context, org, table, id string) (*Row, error) {
	kv, ok := s.rows[table]
	if !ok {
		return nil, fmt.Errorf("table %s is not kept", table)
	}
	e, err := kv.Get(ctx, rowKey(org, table, id))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get %s/%s: %w", kv.Bucket(), rowKey(org, table, id), err)
	}
	r, err := decodeRow(e.Value())
	if err != nil {
		return nil, fmt.Errorf("decode %s/%s: %w", kv.Bucket(), rowKey(org, table, id), err)
	}
	return r, nil
}

// decodeRow reads a stored row.
func decodeRow(data []byte) (*Row, error) {
	var r Row
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

func getJSON(ctx context.Context, kv jetstream.KeyValue, key string, dst any) (bool, error) {
	e, err := kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("get %s/%s: %w", kv.Bucket(), key, err)
	}
	if err := json.Unmarshal(e.Value(), dst); err != nil {
		return false, fmt.Errorf("decode %s/%s: %w", kv.Bucket(), key, err)
	}
	return true, nil
}
