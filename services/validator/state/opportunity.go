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
}

// OpenOpportunitiesOf lists the open opportunities (statecode 0) a contact
// is linked to as parentcontactid or customerid, by id: the opportunities
// at risk when the contact is flagged.
func (s *Store) OpenOpportunitiesOf(ctx context.Context, org, contact string) ([]Opportunity, error) {
	ids, err := s.OpportunitiesOfContact(ctx, org, contact)
	if err != nil {
		return nil, err
	}
	var out []Opportunity
	for _, id := range ids {
		r, err := s.Row(ctx, org, "opportunity", id)
		if err != nil {
			return nil, err
		}
		if o, open := OpenOpportunity(r, contact); open {
			out = append(out, o)
		}
	}
	SortOpportunities(out)
	return out, nil
}

// OpenOpportunity is r as an open opportunity linked to contact; false
// when it is not one (gone, closed, or an index entry the row no longer
// backs).
func OpenOpportunity(r *Row, contact string) (Opportunity, bool) {
	if r == nil || r.Deleted || !slices.Contains(r.LinkedContacts(), contact) {
		return Opportunity{}, false
	}
	if st := r.get("statecode"); st != "" && st != "0" {
		return Opportunity{}, false // won or lost
	}
	return Opportunity{ID: r.ID, Owner: r.Owner(), Account: r.ref("parentaccountid", "account")}, true
}

// SortOpportunities orders opportunities by id.
func SortOpportunities(opps []Opportunity) {
	slices.SortFunc(opps, func(a, b Opportunity) int { return cmp.Compare(a.ID, b.ID) })
}
