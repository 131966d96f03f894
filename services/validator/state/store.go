package state

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	eventsv1 "github.com/notatcompany/notatcompany/proto/notatcompany/events/v1"
	"github.com/notatcompany/notatcompany/services/shared/bus"
	"github.com/notatcompany/notatcompany/services/shared/orgs"
	"github.com/notatcompany/notatcompany/services/validator/decide"
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
	// The streams under the index and contacts buckets: listing keys is a
	// stream info with a subject filter, one request, where a KV key
	// listing would create a consumer per call.
	indexStream, contactStream jetstream.Stream
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
		"opportunity": bus.BucketRows, "systemuser": bus.BucketRows} {
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
	return s, nil
}

// keysUnder lists the keys of bucket under prefix (a key's tokens before
// its last ones), from the subjects of the bucket's stream.
func keysUnder(ctx context.Context, stream jetstream.Stream, bucket, prefix string) ([]string, error) {
	base := "$KV." + bucket + "."
	info, err := stream.Info(ctx, jetstream.WithSubjectFilter(base+prefix+".>"))
	if err != nil {
		return nil, fmt.Errorf("list %s/%s: %w", bucket, redact(prefix), err)
	}
	out := make([]string, 0, len(info.State.Subjects))
	for subj := range info.State.Subjects {
		out = append(out, strings.TrimPrefix(subj, base+prefix+"."))
	}
	slices.Sort(out)
	return out, nil
}

// redact is how errors (which end up in logs) name an index key: its kind
// and a short hash of the rest, which may be a name, an email hash or a
// profile URL.
func redact(key string) string {
	kind, rest, _ := strings.Cut(key, ".")
	sum := sha256.Sum256([]byte(rest))
	return kind + ".h:" + hex.EncodeToString(sum[:6])
}

// casRetries bounds compare-and-set attempts under contention.
const casRetries = 16

// casUpdate reads key, lets next compute the new value from the current one
// (nil when absent) and writes it only if nobody wrote in between.
// next returns nil to leave the key alone.
func casUpdate(ctx context.Context, kv jetstream.KeyValue, key string, next func(cur []byte) ([]byte, error)) error {
	for range casRetries {
		var cur []byte
		var rev uint64
		e, err := kv.Get(ctx, key)
		switch {
		case err == nil:
			cur, rev = e.Value(), e.Revision()
		case errors.Is(err, jetstream.ErrKeyNotFound):
		default:
			return fmt.Errorf("get %s/%s: %w", kv.Bucket(), key, err)
		}
		val, err := next(cur)
		if err != nil || val == nil {
			return err
		}
		if rev == 0 {
			_, err = kv.Create(ctx, key, val)
		} else {
			_, err = kv.Update(ctx, key, val, rev)
		}
		if err == nil {
			return nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) && !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			return fmt.Errorf("write %s/%s: %w", kv.Bucket(), key, err)
		}
	}
	return fmt.Errorf("write %s/%s: still contended after %d attempts", kv.Bucket(), key, casRetries)
}

// rowKey is the key of a row: contacts and accounts have buckets of their
// own; opportunities and system users share one, told apart by table.
func rowKey(org, table, id string) string {
	if table == "contact" || table == "account" {
		return bus.Token(org) + "." + bus.Token(id)
	}
	return bus.Token(org) + "." + table + "." + bus.Token(id)
}

// ApplyChange folds a CRM change into its row and the indexes. It returns
// the row before and after (nil when absent) and whether it changed.
func (s *Store) ApplyChange(ctx context.Context, ch *eventsv1.CrmChange) (before, after *Row, changed bool, err error) {
	kv, ok := s.rows[ch.GetTable()]
	if !ok {
		return nil, nil, false, nil
	}
	extra := s.cols.Extra(ch.GetTable())
	org := ch.GetOrganizationId()
	err = casUpdate(ctx, kv, rowKey(org, ch.GetTable(), ch.GetRowId()), func(cur []byte) ([]byte, error) {
		before, after, changed = nil, nil, false
		if cur != nil {
			before = &Row{}
			if err := json.Unmarshal(cur, before); err != nil {
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
	var r Row
	found, err := getJSON(ctx, kv, rowKey(org, table, id), &r)
	if !found || err != nil {
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

// Index keys: one key per edge, so that adding or removing an edge never
// races with another edge of the same node. Outside ids and keys are made
// safe with bus.Token.
func accountContactsKey(org, account string) string {
	return "acct." + bus.Token(org) + "." + bus.Token(account)
}
func contactEmailKey(hash string) string    { return "cemail." + hash }
func contactNameKey(key string) string      { return "cname." + bus.Token(key) }
func contactMemberKey(member string) string { return "cmid." + bus.Token(member) }
func contactURLKey(url string) string       { return "curl." + bus.Token(url) }
func memberEmailKey(hash string) string     { return "memail." + hash }
func memberNameKey(key string) string       { return "mname." + bus.Token(key) }
func memberURLKey(url string) string        { return "murl." + bus.Token(url) }
func accountNameKey(key string) string      { return "aname." + bus.Token(key) }
func accountDomainKey(domain string) string { return "adom." + bus.Token(domain) }
func companyNameKey(key string) string      { return "coname." + bus.Token(key) }
func companyDomainKey(domain string) string { return "codom." + bus.Token(domain) }
func ownedKey(org, user, kind string) string {
	return "own." + bus.Token(org) + "." + bus.Token(user) + "." + kind
}
func opportunityContactsKey(org, opp string) string {
	return "oppc." + bus.Token(org) + "." + bus.Token(opp)
}
func contactOpportunitiesKey(org, contact string) string {
	return "copp." + bus.Token(org) + "." + bus.Token(contact)
}

func (s *Store) rowEdges(org string, r *Row) []string {
	if r == nil || r.Deleted {
		return nil
	}
	var edges []string
	at := func(prefix, id string) { edges = append(edges, prefix+"."+bus.Token(id)) }
	inOrg := func(prefix, id string) { edges = append(edges, prefix+"."+bus.Token(org)+"."+bus.Token(id)) }
	if owner := r.Owner(); owner != "" {
		at(ownedKey(org, owner, r.Table[:1]), r.ID)
	}
	switch r.Table {
	case "contact":
		c := r.Contact(s.cols)
		if c.AccountID != "" {
			at(accountContactsKey(org, c.AccountID), r.ID)
		}
		for _, h := range c.EmailHashes {
			inOrg(contactEmailKey(h), r.ID)
		}
		if k := decide.NameKey(c.FirstName, c.LastName); strings.Contains(k, " ") {
			inOrg(contactNameKey(k), r.ID)
		}
		if c.MemberID != "" {
			inOrg(contactMemberKey(c.MemberID), r.ID)
		}
		if u := decide.ProfileURLKey(c.ProfileURL); u != "" {
			inOrg(contactURLKey(u), r.ID)
		}
	case "account":
		a := r.Account(s.cols)
		if k := decide.CompanyKey(a.Name); k != "" {
			inOrg(accountNameKey(k), r.ID)
		}
		if d := decide.Domain(a.Website); d != "" {
			inOrg(accountDomainKey(d), r.ID)
		}
	case "opportunity":
		for _, c := range r.LinkedContacts() {
			at(opportunityContactsKey(org, r.ID), c)
			at(contactOpportunitiesKey(org, c), r.ID)
		}
	}
	return edges
}

// reindex removes the edges only in before and adds those only in after.
// An edge is removed by purging its subject, so that no delete marker is
// left for a listing to step over.
//
// Two changes of one record may be applied at once (replicas, workers),
// and the one that wrote first may reindex last, removing an edge the
// other has just added back. So after removing edges it reads the record
// again (current returns its edges as it now stands) and puts back those
// it still has: an edge is never missing. One left over is harmless, as
// every reader checks the record behind an edge.
func (s *Store) reindex(ctx context.Context, before, after []string, current func(context.Context) ([]string, error)) error {
	var removed []string
	for _, k := range before {
		if !slices.Contains(after, k) {
			if err := s.indexStream.Purge(ctx, jetstream.WithPurgeSubject("$KV."+bus.BucketIndex+"."+k)); err != nil {
				return fmt.Errorf("unindex %s: %w", redact(k), err)
			}
			removed = append(removed, k)
		}
	}
	for _, k := range after {
		if !slices.Contains(before, k) {
			if _, err := s.index.Put(ctx, k, []byte{1}); err != nil {
				return fmt.Errorf("index %s: %w", redact(k), err)
			}
		}
	}
	if len(removed) == 0 {
		return nil
	}
	now, err := current(ctx)
	if err != nil {
		return fmt.Errorf("read back after unindexing: %w", err)
	}
	for _, k := range removed {
		if slices.Contains(now, k) {
			if _, err := s.index.Put(ctx, k, []byte{1}); err != nil {
				return fmt.Errorf("index %s: %w", redact(k), err)
			}
		}
	}
	return nil
}

// edgeTails lists the parts after prefix of every edge key under prefix.
func (s *Store) edgeTails(ctx context.Context, prefix string) ([]string, error) {
	return keysUnder(ctx, s.indexStream, bus.BucketIndex, prefix)
}

// ContactRef names a contact in an organization.
type ContactRef struct {
	Org string `json:"o"`
	ID  string `json:"c"`
}

// ContactsOfAccount lists the contacts whose account is account.
func (s *Store) ContactsOfAccount(ctx context.Context, org, account string) ([]ContactRef, error) {
	return s.inOrg(ctx, org, accountContactsKey(org, account))
}

// ContactsOfOpportunity lists the contacts an opportunity links to.
func (s *Store) ContactsOfOpportunity(ctx context.Context, org, opp string) ([]ContactRef, error) {
	return s.inOrg(ctx, org, opportunityContactsKey(org, opp))
}

// OpportunitiesOfContact lists the opportunities linked to a contact.
func (s *Store) OpportunitiesOfContact(ctx context.Context, org, contact string) ([]string, error) {
	return s.edgeTails(ctx, contactOpportunitiesKey(org, contact))
}

// Owned lists the rows of one kind ("c" contacts, "a" accounts,
// "o" opportunities) a system user owns.
func (s *Store) Owned(ctx context.Context, org, user, kind string) ([]string, error) {
	return s.edgeTails(ctx, ownedKey(org, user, kind))
}

func (s *Store) inOrg(ctx context.Context, org, prefix string) ([]ContactRef, error) {
	tails, err := s.edgeTails(ctx, prefix)
	out := make([]ContactRef, 0, len(tails))
	for _, t := range tails {
		out = append(out, ContactRef{Org: org, ID: t})
	}
	return out, err
}

// ContactsMatchable lists the contacts, in any organization, that a member
// as described could match: by email, explicit id, profile URL or name.
func (s *Store) ContactsMatchable(ctx context.Context, m *MemberRecord) ([]ContactRef, error) {
	if m == nil || m.Erased {
		return nil, nil
	}
	prefixes := []string{contactMemberKey(m.ID)}
	for _, h := range m.EmailHashes {
		prefixes = append(prefixes, contactEmailKey(h))
	}
	if u := decide.ProfileURLKey(m.ProfileURL); u != "" {
		prefixes = append(prefixes, contactURLKey(u))
	}
	if k := decide.NameKey(m.FirstName, m.LastName); strings.Contains(k, " ") {
		prefixes = append(prefixes, contactNameKey(k))
	}
	var out []ContactRef
	for _, p := range prefixes {
		refs, err := s.refs(ctx, p)
		if err != nil {
			return nil, err
		}
		out = append(out, refs...)
	}
	return out, nil
}

// AccountsByCompany lists accounts whose name or website matches a company.
func (s *Store) AccountsByCompany(ctx context.Context, name string, domains []string) ([]ContactRef, error) {
	var out []ContactRef
	prefixes := []string{}
	if k := decide.CompanyKey(name); k != "" {
		prefixes = append(prefixes, accountNameKey(k))
	}
	for _, d := range domains {
		prefixes = append(prefixes, accountDomainKey(d))
	}
	for _, p := range prefixes {
		refs, err := s.refs(ctx, p)
		if err != nil {
			return nil, err
		}
		out = append(out, refs...)
	}
	return out, nil
}

func (s *Store) refs(ctx context.Context, prefix string) ([]ContactRef, error) {
	tails, err := s.edgeTails(ctx, prefix)
	var out []ContactRef
	for _, t := range tails {
		if org, id, ok := strings.Cut(t, "."); ok {
			out = append(out, ContactRef{Org: org, ID: id})
		}
	}
	return out, err
}

// ContactsOfOrg lists every contact of an organization.
func (s *Store) ContactsOfOrg(ctx context.Context, org string) ([]ContactRef, error) {
	ids, err := keysUnder(ctx, s.contactStream, bus.BucketContacts, bus.Token(org))
	return s.refsIn(org, ids), err
}

func (s *Store) refsIn(org string, ids []string) []ContactRef {
	out := make([]ContactRef, 0, len(ids))
	for _, id := range ids {
		out = append(out, ContactRef{Org: org, ID: id})
	}
	return out
}

// CompanyRecord is a company page as stored.
type CompanyRecord struct {
	ID         string   `json:"id"`
	Name       string   `json:"n"`
	Domains    []string `json:"d,omitempty"`
	Parent     string   `json:"p,omitempty"`
	Successor  string   `json:"s,omitempty"`
	ObservedAt int64    `json:"obs"`
}

// ApplyCompany stores a company observation unless a newer one is stored.
func (s *Store) ApplyCompany(ctx context.Context, c *eventsv1.CompanyChange) (before, after *CompanyRecord, changed bool, err error) {
	next := &CompanyRecord{ID: c.GetCompanyId(), Name: c.GetName(), Domains: c.GetDomains(),
		Parent: c.GetParentCompanyId(), Successor: c.GetSuccessorCompanyId(), ObservedAt: c.GetObservedAt().AsTime().UnixMilli()}
	err = casUpdate(ctx, s.companies, bus.Token(next.ID), func(cur []byte) ([]byte, error) {
		before, after, changed = nil, nil, false
		if cur != nil {
			before = &CompanyRecord{}
			if err := json.Unmarshal(cur, before); err != nil {
				return nil, fmt.Errorf("decode company: %w", err)
			}
			if next.ObservedAt < before.ObservedAt {
				return nil, nil
			}
		}
		data, err := json.Marshal(next)
		if err != nil || (cur != nil && string(cur) == string(data)) {
			return nil, err
		}
		// Two observations of the same instant: the greater encoding wins,
		// so that the order of arrival never decides.
		if before != nil && next.ObservedAt == before.ObservedAt && string(data) < string(cur) {
			return nil, nil
		}
		after, changed = next, true
		return data, nil
	})
	if err != nil || !changed {
		return before, after, changed, err
	}
	return before, after, true, s.reindex(ctx, companyEdges(before), companyEdges(after), func(ctx context.Context) ([]string, error) {
		var now CompanyRecord
		found, err := getJSON(ctx, s.companies, bus.Token(next.ID), &now)
		if !found || err != nil {
			return nil, err
		}
		return companyEdges(&now), nil
	})
}

func companyEdges(c *CompanyRecord) []string {
	if c == nil {
		return nil
	}
	var out []string
	if k := decide.CompanyKey(c.Name); k != "" {
		out = append(out, companyNameKey(k)+"."+bus.Token(c.ID))
	}
	for _, d := range c.Domains {
		out = append(out, companyDomainKey(d)+"."+bus.Token(c.ID))
	}
	return out
}

// CompanyIDsOfAccount lists the companies an account points at: its
// explicit company id, and the company pages with its name or domain.
func (s *Store) CompanyIDsOfAccount(ctx context.Context, a *decide.Account) ([]string, error) {
	if a == nil {
		return nil, nil
	}
	var ids []string
	if a.CompanyID != "" {
		ids = append(ids, a.CompanyID)
	}
	var prefixes []string
	if k := decide.CompanyKey(a.Name); k != "" {
		prefixes = append(prefixes, companyNameKey(k))
	}
	if d := decide.Domain(a.Website); d != "" {
		prefixes = append(prefixes, companyDomainKey(d))
	}
	for _, p := range prefixes {
		tails, err := s.edgeTails(ctx, p)
		if err != nil {
			return nil, err
		}
		for _, t := range tails {
			ids = append(ids, tokenID(t))
		}
	}
	return ids, nil
}

// CompaniesWithFamily returns the companies with these ids, and their
// parents and successors: what the employer family of decide needs.
func (s *Store) CompaniesWithFamily(ctx context.Context, ids []string) (map[string]decide.Company, error) {
	out, err := s.Companies(ctx, ids)
	if err != nil {
		return nil, err
	}
	var family []string
	for _, c := range out {
		family = append(family, c.Parent, c.Successor)
	}
	more, err := s.Companies(ctx, family)
	for id, c := range more {
		out[id] = c
	}
	return out, err
}

// tokenID undoes bus.Token for an id that needed encoding.
func tokenID(t string) string {
	if rest, ok := strings.CutPrefix(t, "b64_"); ok {
		if b, err := base64.RawURLEncoding.DecodeString(rest); err == nil {
			return string(b)
		}
	}
	return t
}

// Companies returns the stored companies among ids.
func (s *Store) Companies(ctx context.Context, ids []string) (map[string]decide.Company, error) {
	out := map[string]decide.Company{}
	for _, id := range ids {
		if _, done := out[id]; id == "" || done {
			continue
		}
		var c CompanyRecord
		found, err := getJSON(ctx, s.companies, bus.Token(id), &c)
		if err != nil {
			return nil, err
		}
		if found {
			out[id] = decide.Company{ID: c.ID, Name: c.Name, Domains: c.Domains, Parent: c.Parent, Successor: c.Successor}
		}
	}
	return out, nil
}

// ApplySyncUser records an admin change of a sync user, unless a newer one
// is recorded; changed reports whether the user's state changed.
func (s *Store) ApplySyncUser(ctx context.Context, c *eventsv1.SyncUserChange) (changed bool, err error) {
	next := orgs.SyncUser{Enabled: c.GetEnabled(), ChangedAt: c.GetChangedAt().AsTime().UnixMilli()}
	err = casUpdate(ctx, s.syncUsers, orgs.SyncUserKey(c.GetOrganizationId(), c.GetUserId()), func(cur []byte) ([]byte, error) {
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
	return changed, err
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

// ApplySettings records an organization's settings unless newer ones are.
func (s *Store) ApplySettings(ctx context.Context, c *eventsv1.OrgSettingsChange) (before *orgs.Settings, changed bool, err error) {
	next := orgs.Settings{DataValidation: c.GetDataValidation(), Threshold: c.GetConfidenceThreshold(),
		ReflagAfterIgnore: c.GetReflagAfterIgnore(), KeepPersonOverride: c.GetKeepPersonOverride(),
		ChangedAt: c.GetChangedAt().AsTime().UnixMilli()}
	err = casUpdate(ctx, s.orgs, orgs.SettingsKey(c.GetOrganizationId()), func(cur []byte) ([]byte, error) {
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
	return before, changed, err
}

// Settings returns an organization's settings; the zero value when none.
func (s *Store) Settings(ctx context.Context, org string) (orgs.Settings, error) {
	var o orgs.Settings
	_, err := getJSON(ctx, s.orgs, orgs.SettingsKey(org), &o)
	return o, err
}
