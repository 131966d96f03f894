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
		if r == nil || r.Deleted || !slices.Contains(r.LinkedContacts(), contact) {
			continue // an index entry the row no longer backs
		}
		if st := r.get("statecode"); st != "" && st != "0" {
			continue // won or lost
		}
		out = append(out, Opportunity{ID: r.ID, Owner: r.Owner(), Account: r.ref("parentaccountid", "account")})
	}
	slices.SortFunc(out, func(a, b Opportunity) int { return cmp.Compare(a.ID, b.ID) })
	return out, nil
}
