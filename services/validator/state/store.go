package state

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	eventsv1 "github.com/notatcompany/notatcompany/proto/notatcompany/events/v1"
	"github.com/notatcompany/notatcompany/services/shared/bus"
	"github.com/notatcompany/notatcompany/services/validator/decide"
)

// Store is the validator's state in JetStream KV.
type Store struct {
	rows      map[string]jetstream.KeyValue // by table
	members   jetstream.KeyValue
	companies jetstream.KeyValue
	decisions jetstream.KeyValue
	index     jetstream.KeyValue
	// flagColumn is kept on contacts: a user's Ignore lives there.
	flagColumn string
}

// Open binds the store to the buckets bus.Declare created.
func Open(ctx context.Context, js jetstream.JetStream, flagColumn string) (*Store, error) {
	s := &Store{rows: map[string]jetstream.KeyValue{}, flagColumn: flagColumn}
	bind := func(name string) (jetstream.KeyValue, error) {
		kv, err := js.KeyValue(ctx, name)
		if err != nil {
			return nil, fmt.Errorf("bind bucket %s: %w", name, err)
		}
		return kv, nil
	}
	var err error
	for table, bucket := range map[string]string{"contact": bus.BucketContacts, "account": bus.BucketAccounts} {
		if s.rows[table], err = bind(bucket); err != nil {
			return nil, err
		}
	}
	for dst, name := range map[*jetstream.KeyValue]string{
		&s.members: bus.BucketMembers, &s.companies: bus.BucketCompanies,
		&s.decisions: bus.BucketDecisions, &s.index: bus.BucketIndex,
	} {
		if *dst, err = bind(name); err != nil {
			return nil, err
		}
	}
	return s, nil
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

func rowKey(org, id string) string { return bus.Token(org) + "." + bus.Token(id) }

// ApplyChange folds a CRM change into its row and the indexes. It returns
// the row before and after (nil when absent) and whether it changed.
func (s *Store) ApplyChange(ctx context.Context, ch *eventsv1.CrmChange) (before, after *Row, changed bool, err error) {
	kv, ok := s.rows[ch.GetTable()]
	if !ok {
		return nil, nil, false, nil
	}
	var extra []string
	if ch.GetTable() == "contact" {
		extra = []string{s.flagColumn}
	}
	org := ch.GetOrganizationId()
	err = casUpdate(ctx, kv, rowKey(org, ch.GetRowId()), func(cur []byte) ([]byte, error) {
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
	return before, after, true, s.reindex(ctx, s.rowEdges(org, before), s.rowEdges(org, after))
}

// Row returns a CRM row, or nil when unknown.
func (s *Store) Row(ctx context.Context, org, table, id string) (*Row, error) {
	kv, ok := s.rows[table]
	if !ok {
		return nil, fmt.Errorf("table %s is not kept", table)
	}
	var r Row
	found, err := getJSON(ctx, kv, rowKey(org, id), &r)
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
// races with another edge of the same node.
func accountContactsKey(org, account string) string {
	return "acct." + bus.Token(org) + "." + bus.Token(account)
}
func contactEmailKey(hash string) string    { return "cemail." + hash }
func memberEmailKey(hash string) string     { return "memail." + hash }
func accountNameKey(key string) string      { return "aname." + bus.Token(key) }
func accountDomainKey(domain string) string { return "adom." + bus.Token(domain) }

func (s *Store) rowEdges(org string, r *Row) []string {
	if r == nil || r.Deleted {
		return nil
	}
	var edges []string
	switch r.Table {
	case "contact":
		c := r.Contact(s.flagColumn)
		if c.AccountID != "" {
			edges = append(edges, accountContactsKey(org, c.AccountID)+"."+bus.Token(r.ID))
		}
		for _, h := range c.EmailHashes {
			edges = append(edges, contactEmailKey(h)+"."+bus.Token(org)+"."+bus.Token(r.ID))
		}
	case "account":
		a := r.Account()
		if k := decide.CompanyKey(a.Name); k != "" {
			edges = append(edges, accountNameKey(k)+"."+bus.Token(org)+"."+bus.Token(r.ID))
		}
		if d := decide.Domain(a.Website); d != "" {
			edges = append(edges, accountDomainKey(d)+"."+bus.Token(org)+"."+bus.Token(r.ID))
		}
	}
	return edges
}

// reindex removes the edges only in before and adds those only in after.
func (s *Store) reindex(ctx context.Context, before, after []string) error {
	for _, k := range before {
		if !slices.Contains(after, k) {
			if err := s.index.Delete(ctx, k); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
				return fmt.Errorf("unindex %s: %w", k, err)
			}
		}
	}
	for _, k := range after {
		if !slices.Contains(before, k) {
			if _, err := s.index.Put(ctx, k, []byte{1}); err != nil {
				return fmt.Errorf("index %s: %w", k, err)
			}
		}
	}
	return nil
}

// edgeTails lists the parts after prefix of every edge key under prefix.
func (s *Store) edgeTails(ctx context.Context, prefix string) ([]string, error) {
	lister, err := s.index.ListKeysFiltered(ctx, prefix+".>")
	if err != nil {
		if errors.Is(err, jetstream.ErrNoKeysFound) {
			return nil, nil
		}
		return nil, fmt.Errorf("list %s: %w", prefix, err)
	}
	defer lister.Stop()
	var out []string
	for k := range lister.Keys() {
		out = append(out, strings.TrimPrefix(k, prefix+"."))
	}
	return out, nil
}

// ContactRef names a contact in an organization.
type ContactRef struct{ Org, ID string }

// ContactsOfAccount lists the contacts whose account is account.
func (s *Store) ContactsOfAccount(ctx context.Context, org, account string) ([]ContactRef, error) {
	tails, err := s.edgeTails(ctx, accountContactsKey(org, account))
	var out []ContactRef
	for _, t := range tails {
		out = append(out, ContactRef{Org: org, ID: t})
	}
	return out, err
}

// ContactsByEmail lists contacts, in any organization, with this email hash.
func (s *Store) ContactsByEmail(ctx context.Context, hash string) ([]ContactRef, error) {
	return s.refs(ctx, contactEmailKey(hash))
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

// MemberRecord is a member as stored: the newest observation, or a
// tombstone once erased (no personal data left, only when).
type MemberRecord struct {
	ID          string            `json:"id"`
	Source      string            `json:"src,omitempty"`
	ObservedAt  int64             `json:"obs"`
	Erased      bool              `json:"erased,omitempty"`
	EmailHashes []string          `json:"eh,omitempty"`
	Positions   []decide.Position `json:"pos,omitempty"`
}

// Decision returns the decision package's view of the member.
func (m *MemberRecord) Decision() decide.Member {
	return decide.Member{ID: m.ID, Source: m.Source, ObservedAt: time.UnixMilli(m.ObservedAt).UTC(),
		EmailHashes: m.EmailHashes, Positions: m.Positions}
}

func memberFrom(p *eventsv1.ProfileChange) *MemberRecord {
	m := &MemberRecord{ID: p.GetMemberId(), Source: p.GetSource(), ObservedAt: p.GetObservedAt().AsTime().UnixMilli()}
	m.EmailHashes = slices.Compact(slices.Sorted(slices.Values(p.GetEmailSha256())))
	for _, pos := range p.GetPositions() {
		m.Positions = append(m.Positions, decide.Position{
			CompanyID: pos.GetCompanyId(), CompanyName: pos.GetCompanyName(), Title: pos.GetTitle(),
			Start: yearMonth(pos.GetStart()), End: yearMonth(pos.GetEnd()), Current: pos.GetCurrent(),
		})
	}
	return m
}

func yearMonth(ym *eventsv1.YearMonth) *decide.YearMonth {
	if ym == nil {
		return nil
	}
	return &decide.YearMonth{Year: int(ym.GetYear()), Month: int(ym.GetMonth())}
}

func memberEdges(m *MemberRecord) []string {
	if m == nil || m.Erased {
		return nil
	}
	var out []string
	for _, h := range m.EmailHashes {
		out = append(out, memberEmailKey(h)+"."+bus.Token(m.ID))
	}
	return out
}

// ApplyProfile stores a profile observation unless a newer one is stored.
func (s *Store) ApplyProfile(ctx context.Context, p *eventsv1.ProfileChange) (before, after *MemberRecord, changed bool, err error) {
	return s.putMember(ctx, memberFrom(p))
}

// EraseMember removes everything held about a member, leaving a tombstone
// (id and time) so that an older observation arriving late stays erased.
func (s *Store) EraseMember(ctx context.Context, e *eventsv1.MemberErased) (before *MemberRecord, erased bool, err error) {
	before, _, erased, err = s.putMember(ctx, &MemberRecord{
		ID: e.GetMemberId(), ObservedAt: e.GetObservedAt().AsTime().UnixMilli(), Erased: true,
	})
	return before, erased, err
}

func (s *Store) putMember(ctx context.Context, next *MemberRecord) (before, after *MemberRecord, changed bool, err error) {
	err = casUpdate(ctx, s.members, bus.Token(next.ID), func(cur []byte) ([]byte, error) {
		before, after, changed = nil, nil, false
		if cur != nil {
			before = &MemberRecord{}
			if err := json.Unmarshal(cur, before); err != nil {
				return nil, fmt.Errorf("decode member: %w", err)
			}
			// Older observations lose; an erasure wins over anything it
			// follows, and a profile observed after an erasure starts anew.
			if next.ObservedAt < before.ObservedAt || (next.ObservedAt == before.ObservedAt && before.Erased) {
				return nil, nil
			}
		}
		after = next
		data, err := json.Marshal(after)
		if err != nil {
			return nil, err
		}
		if cur != nil && string(cur) == string(data) {
			return nil, nil
		}
		changed = true
		return data, nil
	})
	if err != nil || !changed {
		return before, after, changed, err
	}
	return before, after, true, s.reindex(ctx, memberEdges(before), memberEdges(after))
}

// MembersByEmail lists the members (not erased) with any of these email hashes.
func (s *Store) MembersByEmail(ctx context.Context, hashes []string) ([]*MemberRecord, error) {
	var out []*MemberRecord
	seen := map[string]bool{}
	for _, h := range hashes {
		tails, err := s.edgeTails(ctx, memberEmailKey(h))
		if err != nil {
			return nil, err
		}
		for _, id := range tails {
			if seen[id] {
				continue
			}
			seen[id] = true
			var m MemberRecord
			found, err := getJSON(ctx, s.members, id, &m)
			if err != nil {
				return nil, err
			}
			// The index may briefly lag the record; trust the record.
			if found && !m.Erased && slices.Contains(m.EmailHashes, h) {
				out = append(out, &m)
			}
		}
	}
	return out, nil
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
		after, changed = next, true
		return data, nil
	})
	return before, after, changed, err
}

// Companies returns the stored companies among ids.
func (s *Store) Companies(ctx context.Context, ids []string) (map[string]decide.Company, error) {
	out := map[string]decide.Company{}
	for _, id := range ids {
		if id == "" {
			continue
		}
		var c CompanyRecord
		found, err := getJSON(ctx, s.companies, bus.Token(id), &c)
		if err != nil {
			return nil, err
		}
		if found {
			out[id] = decide.Company{ID: c.ID, Name: c.Name, Domains: c.Domains}
		}
	}
	return out, nil
}

// LastDecision is the decision last published for a contact.
type LastDecision struct {
	DecisionID string `json:"id"`
	Value      int    `json:"v"`
	Reason     string `json:"r"`
	Digest     string `json:"d"`
	DecidedAt  int64  `json:"at"`
}

func decisionKey(org, contact string) string { return rowKey(org, contact) }

// LastDecision returns the last decision for a contact and its revision
// (0 when there was none), for SaveDecision's compare-and-set.
func (s *Store) LastDecision(ctx context.Context, org, contact string) (*LastDecision, uint64, error) {
	e, err := s.decisions.Get(ctx, decisionKey(org, contact))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("get decision: %w", err)
	}
	var d LastDecision
	if err := json.Unmarshal(e.Value(), &d); err != nil {
		return nil, 0, fmt.Errorf("decode decision: %w", err)
	}
	return &d, e.Revision(), nil
}

// ErrConflict means another replica recorded a decision for the contact first.
var ErrConflict = errors.New("decision recorded concurrently")

// SaveDecision records d as the last decision if the stored one is still at rev.
func (s *Store) SaveDecision(ctx context.Context, org, contact string, d LastDecision, rev uint64) error {
	data, err := json.Marshal(d)
	if err != nil {
		return err
	}
	key := decisionKey(org, contact)
	if rev == 0 {
		_, err = s.decisions.Create(ctx, key, data)
	} else {
		_, err = s.decisions.Update(ctx, key, data, rev)
	}
	if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return ErrConflict
	}
	if err != nil {
		return fmt.Errorf("save decision: %w", err)
	}
	return nil
}
