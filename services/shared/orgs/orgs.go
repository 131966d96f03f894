// Package orgs is the per-organization administration the services share:
// sync users and validation settings, as the validator keeps them in KV
// (from admin changes) and as the admin API and the writer read them.
package orgs

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/notatcompany/notatcompany/services/shared/bus"
)

// SyncUser is a sync user as kept per organization.
type SyncUser struct {
	Enabled   bool  `json:"on"`
	ChangedAt int64 `json:"at"` // unix ms of the admin change
}

// Settings are an organization's validation settings.
type Settings struct {
	DataValidation    bool    `json:"dv"`
	Threshold         float64 `json:"th,omitempty"`
	ReflagAfterIgnore bool    `json:"ri"`
	// KeepPersonOverride keeps a person's 0 or 1 over our decision until
	// the evidence changes; false writes our decision again.
	KeepPersonOverride bool  `json:"ko,omitempty"`
	ChangedAt          int64 `json:"at"` // unix ms of the admin change
}

// SyncUserKey is the key of a sync user in bus.BucketSyncUsers.
func SyncUserKey(org, user string) string { return bus.Token(org) + "." + bus.Token(user) }

// SettingsKey is the key of an organization in bus.BucketOrgs.
func SettingsKey(org string) string { return bus.Token(org) }

// Reader reads sync users and settings.
type Reader struct {
	syncUsers, settings jetstream.KeyValue
}

// NewReader binds the buckets bus.Declare created.
func NewReader(ctx context.Context, js jetstream.JetStream) (*Reader, error) {
	su, err := js.KeyValue(ctx, bus.BucketSyncUsers)
	if err != nil {
		return nil, fmt.Errorf("bind bucket %s: %w", bus.BucketSyncUsers, err)
	}
	st, err := js.KeyValue(ctx, bus.BucketOrgs)
	if err != nil {
		return nil, fmt.Errorf("bind bucket %s: %w", bus.BucketOrgs, err)
	}
	return &Reader{syncUsers: su, settings: st}, nil
}

// Settings returns an organization's settings, and whether any were set.
func (r *Reader) Settings(ctx context.Context, org string) (Settings, bool, error) {
	var s Settings
	found, err := getJSON(ctx, r.settings, SettingsKey(org), &s)
	return s, found, err
}

// DataValidation reports whether data validation is on for org.
func (r *Reader) DataValidation(ctx context.Context, org string) (bool, error) {
	s, _, err := r.Settings(ctx, org)
	return s.DataValidation, err
}

// SyncUser returns a sync user, and whether one was ever recorded.
func (r *Reader) SyncUser(ctx context.Context, org, user string) (SyncUser, bool, error) {
	var su SyncUser
	found, err := getJSON(ctx, r.syncUsers, SyncUserKey(org, user), &su)
	return su, found, err
}

// SyncUsers lists the enabled sync users of an organization, sorted.
func (r *Reader) SyncUsers(ctx context.Context, org string) ([]string, error) {
	lister, err := r.syncUsers.ListKeysFiltered(ctx, bus.Token(org)+".*")
	if err != nil {
		if errors.Is(err, jetstream.ErrNoKeysFound) {
			return []string{}, nil
		}
		return nil, fmt.Errorf("list sync users: %w", err)
	}
	defer lister.Stop()
	users := []string{}
	for k := range lister.Keys() {
		var su SyncUser
		found, err := getJSON(ctx, r.syncUsers, k, &su)
		if err != nil {
			return nil, err
		}
		if found && su.Enabled {
			_, u, _ := strings.Cut(k, ".")
			users = append(users, u)
		}
	}
	slices.Sort(users)
	return users, nil
}

// Organizations lists the organizations whose settings an admin ever set,
// sorted: those the admin API and the console know of.
func (r *Reader) Organizations(ctx context.Context) ([]string, error) {
	lister, err := r.settings.ListKeys(ctx)
	if err != nil {
		if errors.Is(err, jetstream.ErrNoKeysFound) {
			return []string{}, nil
		}
		return nil, fmt.Errorf("list organizations: %w", err)
	}
	defer lister.Stop()
	out := []string{}
	for k := range lister.Keys() {
		out = append(out, untoken(k))
	}
	slices.Sort(out)
	return out, nil
}

// untoken reverses bus.Token, which leaves a GUID as it is.
func untoken(tok string) string {
	enc, ok := strings.CutPrefix(tok, "b64_")
	if !ok {
		return tok
	}
	b, err := base64.RawURLEncoding.DecodeString(enc)
	if err != nil {
		return tok
	}
	return string(b)
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
