package state

import (
	"context"
	"encoding/json"
	"fmt"

	eventsv1 "github.com/notatcompany/notatcompany/proto/notatcompany/events/v1"
	"github.com/notatcompany/notatcompany/services/shared/orgs"
)

// ApplySyncUser records an admin change of a sync user, unless a newer one
// is recorded; changed reports whether the user's state changed, and at
// the least scope cache positions that hold the user as it now is.
func (s *Store) ApplySyncUser(ctx context.Context, c *eventsv1.SyncUserChange) (changed bool, at Floor, err error) {
	next := orgs.SyncUser{Enabled: c.GetEnabled(), ChangedAt: c.GetChangedAt().AsTime().UnixMilli()}
	at[SourceSyncUsers], err = casUpdateRev(ctx, s.syncUsers, orgs.SyncUserKey(c.GetOrganizationId(), c.GetUserId()), func(cur []byte) ([]byte, error) {
		changed = false
		if cur != nil {
			var prev orgs.SyncUser
			if err := json.Unmarshal(cur, &prev); err != nil {
				return nil, fmt.Errorf("decode sync user: %w", err)
			}
			if next.ChangedAt < prev.ChangedAt || next == prev {
				return nil, nil
			}
			changed = prev.Enabled != next.Enabled
		} else {
			changed = next.Enabled
		}
		return json.Marshal(next)
	})
	return changed, at, err
}

// IsSyncUser reports whether user is an enabled sync user of org and not
// disabled in Dynamics.
func (s *Store) IsSyncUser(ctx context.Context, org, user string) (bool, error) {
	if user == "" {
		return false, nil
	}
	var su orgs.SyncUser
	found, err := getJSON(ctx, s.syncUsers, orgs.SyncUserKey(org, user), &su)
	if err != nil || !found || !su.Enabled {
		return false, err
	}
	row, err := s.Row(ctx, org, "systemuser", user)
	return err == nil && !row.Disabled(), err
}

// ApplySettings records an organization's settings unless newer ones are;
// at is the least scope cache positions that hold them as they now are.
func (s *Store) ApplySettings(ctx context.Context, c *eventsv1.OrgSettingsChange) (before *orgs.Settings, changed bool, at Floor, err error) {
	next := orgs.Settings{DataValidation: c.GetDataValidation(), Threshold: c.GetConfidenceThreshold(),
		ReflagAfterIgnore: c.GetReflagAfterIgnore(), KeepPersonOverride: c.GetKeepPersonOverride(),
		ChangedAt: c.GetChangedAt().AsTime().UnixMilli()}
	at[SourceSettings], err = casUpdateRev(ctx, s.orgs, orgs.SettingsKey(c.GetOrganizationId()), func(cur []byte) ([]byte, error) {
		before, changed = nil, false
		if cur != nil {
			before = &orgs.Settings{}
			if err := json.Unmarshal(cur, before); err != nil {
				return nil, fmt.Errorf("decode settings: %w", err)
			}
			if next.ChangedAt < before.ChangedAt || next == *before {
				return nil, nil
			}
		}
		changed = true
		return json.Marshal(next)
	})
	return before, changed, at, err
}

// Settings returns an organization's settings; the zero value when none.
func (s *Store) Settings(ctx context.Context, org string) (orgs.Settings, error) {
	var o orgs.Settings
	_, err := getJSON(ctx, s.orgs, orgs.SettingsKey(org), &o)
	return o, err
}
