package state

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	eventsv1 "github.com/notatcompany/notatcompany/proto/notatcompany/events/v1"
	"github.com/notatcompany/notatcompany/services/shared/bus"
	"github.com/notatcompany/notatcompany/services/validator/decide"
)

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
	prefixes := AccountCompanyPrefixes(*a)
	tails, err := s.edgesUnder(ctx, prefixes...)
	if err != nil {
		return nil, err
	}
	return AccountCompanyIDs(*a, prefixes, tails), nil
}

// AccountCompanyPrefixes are the index prefixes of the company pages an
// account points at by name or domain.
func AccountCompanyPrefixes(a decide.Account) []string {
	var prefixes []string
	if k := decide.CompanyKey(a.Name); k != "" {
		prefixes = append(prefixes, companyNameKey(k))
	}
	if d := decide.Domain(a.Website); d != "" {
		prefixes = append(prefixes, companyDomainKey(d))
	}
	return prefixes
}

// AccountCompanyIDs are the companies an account points at: its explicit
// company id, and those of the edges under its prefixes.
func AccountCompanyIDs(a decide.Account, prefixes []string, tails map[string][]string) []string {
	var ids []string
	if a.CompanyID != "" {
		ids = append(ids, a.CompanyID)
	}
	for _, p := range prefixes {
		for _, t := range tails[p] {
			ids = append(ids, tokenID(t))
		}
	}
	return ids
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
	out, _, err := s.CompaniesOf(ctx, ids)
	return out, err
}

// CompaniesOf returns the stored companies among ids, in one request, and
// what was read for each id.
func (s *Store) CompaniesOf(ctx context.Context, ids []string) (map[string]decide.Company, map[string]Dep, error) {
	out := map[string]decide.Company{}
	deps := map[string]Dep{}
	var subjects, asked []string
	for _, id := range uniqStrings(ids) {
		if id != "" {
			subjects = append(subjects, companiesBase+bus.Token(id))
			asked = append(asked, id)
		}
	}
	msgs, pos, err := s.direct.lastFor(ctx, companiesStream, subjects, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("read %d companies: %w", len(subjects), err)
	}
	for i, id := range asked {
		deps[id] = Dep{Stream: companiesStream, Filter: subjects[i], Pos: pos[i]}
	}
	for _, m := range msgs {
		if m.Deleted {
			continue
		}
		var c CompanyRecord
		if err := json.Unmarshal(m.Data, &c); err != nil {
			return nil, nil, fmt.Errorf("decode company %s: %w", m.Subject, err)
		}
		out[c.ID] = decide.Company{ID: c.ID, Name: c.Name, Domains: c.Domains, Parent: c.Parent, Successor: c.Successor}
	}
	return out, deps, nil
}

const companiesStream = "KV_" + bus.BucketCompanies

const companiesBase = "$KV." + bus.BucketCompanies + "."

func uniqStrings(in []string) []string {
	out := slices.Clone(in)
	slices.Sort(out)
	return slices.Compact(out)
}
