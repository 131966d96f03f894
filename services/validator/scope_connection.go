package validator

import (
	"context"
	"slices"

	eventsv1 "github.com/notatcompany/notatcompany/proto/notatcompany/events/v1"
	"github.com/notatcompany/notatcompany/services/validator/state"
)

// scopeOpportunityConnection is the scope rule of an opportunity a
// stakeholder connection links the contact to.
const scopeOpportunityConnection = "opportunity_connection"

// scopeByConnection tries rule 3 through connections: the owner of each
// opportunity a connection links the contact to (stakes; oppRows by id),
// once per opportunity (a reciprocal pair is one link), recording the
// connection and the contact's role in it on the path.
func scopeByConnection(path *eventsv1.ScopePath, stakes []state.Stakeholder, oppRows map[string]*state.Row,
	try func(via, row, user string) (bool, error)) error {
	tried := map[string]bool{}
	for _, k := range stakes {
		if tried[k.Opportunity] {
			continue
		}
		tried[k.Opportunity] = true
		opp := oppRows[k.Opportunity]
		if opp == nil || opp.Deleted {
			continue
		}
		ok, err := try(scopeOpportunityConnection, k.Opportunity, opp.Owner())
		if err != nil {
			return err
		}
		check := path.Checks[len(path.Checks)-1]
		check.ConnectionId, check.RoleId = k.Connection, k.Role
		if ok {
			path.ConnectionId, path.RoleId = k.Connection, k.Role
			return nil
		}
	}
	return nil
}

// withStakeholders appends to refs the contacts connections link to
// opportunity opp: its owner and state move their scope and risk too.
func (s *Service) withStakeholders(ctx context.Context, org, opp string, refs []state.ContactRef) ([]state.ContactRef, error) {
	more, err := s.store.StakeholdersOfOpportunity(ctx, org, opp)
	return append(refs, more...), err
}

// connectionContacts are the contacts a connection change may move: the
// one it linked before and the one it links after (none when it links no
// opportunity to a contact).
func connectionContacts(org string, before, after *state.Row) []state.ContactRef {
	var out []state.ContactRef
	for _, r := range []*state.Row{before, after} {
		if k, ok := r.Stakeholder(); ok && !slices.ContainsFunc(out, func(c state.ContactRef) bool { return c.ID == k.Contact }) {
			out = append(out, state.ContactRef{Org: org, ID: k.Contact})
		}
	}
	return out
}
