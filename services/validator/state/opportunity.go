package state

import (
	"cmp"
	"context"
	"slices"
)

// Opportunity is an open opportunity linked to a contact.
type Opportunity struct {
	ID      string
	Owner   string
	Account string
	// Links are how it links the contact: its lookups first, then its
	// stakeholder connections.
	Links []OpportunityLink
}

// OpportunityLink is one way an opportunity links a contact: Via
// "parentcontactid", "customerid" or "connection" (with the connection and
// the contact's role in it).
type OpportunityLink struct {
	Via        string
	Connection string
	Role       string
}

// OpenOpportunitiesOf lists the open opportunities (statecode 0) a contact
// is linked to, as parentcontactid or customerid or as a stakeholder
// through a connection, by id: the opportunities at risk when the contact
// is flagged.
func (s *Store) OpenOpportunitiesOf(ctx context.Context, org, contact string) ([]Opportunity, error) {
	ids, err := s.OpportunitiesOfContact(ctx, org, contact)
	if err != nil {
		return nil, err
	}
	stakes, err := s.StakeholdingsOf(ctx, org, contact)
	if err != nil {
		return nil, err
	}
	rows := map[string]*Row{}
	for _, id := range append(slices.Clone(ids), opportunitiesOf(stakes)...) {
		if _, read := rows[id]; read {
			continue
		}
		if rows[id], err = s.Row(ctx, org, "opportunity", id); err != nil {
			return nil, err
		}
	}
	return OpenOpportunities(contact, ids, stakes, rows), nil
}

func opportunitiesOf(stakes []Stakeholder) []string {
	var ids []string
	for _, k := range stakes {
		ids = append(ids, k.Opportunity)
	}
	return ids
}

// OpenOpportunities are, of the opportunities the index links a contact to
// (ids, by lookup) and its stakeholdings, the open ones, by id, as rows
// (by opportunity id) have them.
func OpenOpportunities(contact string, ids []string, stakes []Stakeholder, rows map[string]*Row) []Opportunity {
	ids = slices.Clone(ids)
	links := map[string][]OpportunityLink{}
	for _, k := range stakes {
		if !slices.Contains(ids, k.Opportunity) {
			ids = append(ids, k.Opportunity)
		}
		links[k.Opportunity] = append(links[k.Opportunity], OpportunityLink{Via: "connection", Connection: k.Connection, Role: k.Role})
	}
	var out []Opportunity
	for _, id := range ids {
		r := rows[id]
		if r == nil || r.Deleted {
			continue
		}
		if st := r.get("statecode"); st != "" && st != "0" {
			continue // won or lost
		}
		var own []OpportunityLink
		for _, col := range []string{"parentcontactid", "customerid"} {
			if r.ref(col, "contact") == contact {
				own = append(own, OpportunityLink{Via: col})
			}
		}
		own = append(own, links[id]...)
		if len(own) == 0 {
			continue // an index entry the row no longer backs
		}
		out = append(out, Opportunity{ID: r.ID, Owner: r.Owner(), Account: r.ref("parentaccountid", "account"), Links: own})
	}
	slices.SortFunc(out, func(a, b Opportunity) int { return cmp.Compare(a.ID, b.ID) })
	return out
}
