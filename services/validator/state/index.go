package state

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/notatcompany/notatcompany/services/shared/bus"
	"github.com/notatcompany/notatcompany/services/validator/decide"
)

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
	case "connection":
		edges = append(edges, connectionEdges(org, r)...)
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
	tails, err := s.edgesUnder(ctx, prefix)
	return tails[prefix], err
}

// indexBase is the subject prefix of the index bucket's keys.
const indexBase = "$KV." + bus.BucketIndex + "."

// edgesUnder lists, in one request, the parts after each prefix of every
// edge key under it, sorted, by prefix.
func (s *Store) edgesUnder(ctx context.Context, prefixes ...string) (map[string][]string, error) {
	out, _, err := s.EdgesOf(ctx, prefixes)
	return out, err
}

// EdgesOf lists, in one request, the parts after each prefix of every
// edge key under it, sorted, by prefix, and what each listing read.
func (s *Store) EdgesOf(ctx context.Context, prefixes []string) (map[string][]string, map[string]Dep, error) {
	if len(prefixes) == 0 {
		return map[string][]string{}, map[string]Dep{}, nil
	}
	prefixes = uniqStrings(prefixes)
	filters := make([]string, 0, len(prefixes))
	for _, p := range prefixes {
		filters = append(filters, indexBase+p+".>")
	}
	msgs, pos, err := s.direct.lastFor(ctx, indexStream, filters, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("list the index under %d prefixes (first %s): %w", len(prefixes), redact(prefixes[0]), err)
	}
	deps := make(map[string]Dep, len(prefixes))
	byPrefix := make(map[string]string, len(prefixes)) // prefix + "." → prefix
	for i, p := range prefixes {
		deps[p] = Dep{Stream: indexStream, Filter: filters[i], Pos: pos[i]}
		byPrefix[p+"."] = p
	}
	out := make(map[string][]string, len(prefixes))
	for _, m := range msgs {
		if m.Deleted {
			continue
		}
		key := strings.TrimPrefix(m.Subject, indexBase)
		// An edge is under every prefix of its key that was asked for.
		for i := range len(key) {
			if key[i] != '.' {
				continue
			}
			if p, ok := byPrefix[key[:i+1]]; ok {
				out[p] = append(out[p], key[i+1:])
			}
		}
	}
	for p, tails := range out {
		slices.Sort(tails)
		out[p] = slices.Compact(tails)
	}
	return out, deps, nil
}

const indexStream = "KV_" + bus.BucketIndex

// refsUnder lists the org.id contact references under every prefix.
func (s *Store) refsUnder(ctx context.Context, prefixes []string) ([]ContactRef, error) {
	if len(prefixes) == 0 {
		return nil, nil
	}
	byPrefix, err := s.edgesUnder(ctx, prefixes...)
	if err != nil {
		return nil, err
	}
	var out []ContactRef
	for _, p := range prefixes {
		for _, t := range byPrefix[p] {
			if org, id, ok := strings.Cut(t, "."); ok {
				out = append(out, ContactRef{Org: org, ID: id})
			}
		}
	}
	return out, nil
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
	return s.edgeTails(ctx, OpportunitiesPrefix(org, contact))
}

// OpportunitiesPrefix is the index prefix of the opportunities linked to a
// contact; each edge ends in an opportunity id.
func OpportunitiesPrefix(org, contact string) string { return contactOpportunitiesKey(org, contact) }

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
	return s.ContactsMatchableAny(ctx, m)
}

// ContactsMatchableAny lists, in one request, the contacts any of members
// (nil ones ignored) could match: as a member was and as it is now.
func (s *Store) ContactsMatchableAny(ctx context.Context, members ...*MemberRecord) ([]ContactRef, error) {
	var prefixes []string
	for _, m := range members {
		if m == nil || m.Erased {
			continue
		}
		prefixes = append(prefixes, contactMemberKey(m.ID))
		for _, h := range m.EmailHashes {
			prefixes = append(prefixes, contactEmailKey(h))
		}
		if u := decide.ProfileURLKey(m.ProfileURL); u != "" {
			prefixes = append(prefixes, contactURLKey(u))
		}
		if k := decide.NameKey(m.FirstName, m.LastName); strings.Contains(k, " ") {
			prefixes = append(prefixes, contactNameKey(k))
		}
	}
	return s.refsUnder(ctx, uniqStrings(prefixes))
}

// AccountsByCompany lists accounts whose name or website matches a company.
func (s *Store) AccountsByCompany(ctx context.Context, name string, domains []string) ([]ContactRef, error) {
	prefixes := []string{}
	if k := decide.CompanyKey(name); k != "" {
		prefixes = append(prefixes, accountNameKey(k))
	}
	for _, d := range domains {
		prefixes = append(prefixes, accountDomainKey(d))
	}
	return s.refsUnder(ctx, prefixes)
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
