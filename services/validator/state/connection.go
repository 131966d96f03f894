package state

import (
	"cmp"
	"context"
	"slices"
	"strings"

	"github.com/notatcompany/notatcompany/services/shared/bus"
)

// Stakeholder is an active connection between an opportunity and a
// contact: the contact is a stakeholder of the opportunity, in the role the
// connection gives the contact's end. Dataverse creates connections in
// reciprocal pairs, so one pair usually comes as two connections, one in
// each direction; either links them.
type Stakeholder struct {
	Connection  string
	Opportunity string
	Contact     string
	// Role is the connection role of the contact's end; "" when none.
	Role string
}

// objectTypes are the tables of the object type codes a connection's ends
// carry (record1objecttypecode, record2objecttypecode).
var objectTypes = map[string]string{"1": "account", "2": "contact", "3": "opportunity", "8": "systemuser"}

// connectionEnd is the table and id of end n ("1" or "2") of a connection:
// the table from the object type code when the row has one, else from the
// lookup.
func (r *Row) connectionEnd(n string) (table, id string) {
	t, id, ok := strings.Cut(r.get("record"+n+"id"), ":")
	if !ok || id == "" {
		return "", ""
	}
	if ot, ok := objectTypes[r.get("record"+n+"objecttypecode")]; ok {
		t = ot
	}
	return t, id
}

// Stakeholder reports the opportunity and contact a connection row links,
// in either direction; false for a connection that is deleted, inactive
// (statecode 1) or between other records.
func (r *Row) Stakeholder() (Stakeholder, bool) {
	if r == nil || r.Deleted || r.Table != "connection" {
		return Stakeholder{}, false
	}
	if st := r.get("statecode"); st != "" && st != "0" {
		return Stakeholder{}, false
	}
	t1, id1 := r.connectionEnd("1")
	t2, id2 := r.connectionEnd("2")
	role := func(n string) string {
		_, id, _ := strings.Cut(r.get("record"+n+"roleid"), ":")
		return id
	}
	switch {
	case t1 == "opportunity" && t2 == "contact":
		return Stakeholder{Connection: r.ID, Opportunity: id1, Contact: id2, Role: role("2")}, true
	case t1 == "contact" && t2 == "opportunity":
		return Stakeholder{Connection: r.ID, Opportunity: id2, Contact: id1, Role: role("1")}, true
	}
	return Stakeholder{}, false
}

// Index keys of stakeholder connections: one edge per connection at each
// end, so that a contact linked to an opportunity both by a lookup and by a
// connection, or by two connections, loses one link without the other.
func opportunityStakeholdersKey(org, opp string) string {
	return "oppk." + bus.Token(org) + "." + bus.Token(opp)
}
func contactStakeholdingsKey(org, contact string) string {
	return "copk." + bus.Token(org) + "." + bus.Token(contact)
}

// connectionEdges are the index edges of a connection row.
func connectionEdges(org string, r *Row) []string {
	k, ok := r.Stakeholder()
	if !ok {
		return nil
	}
	conn := bus.Token(k.Connection)
	return []string{
		opportunityStakeholdersKey(org, k.Opportunity) + "." + bus.Token(k.Contact) + "." + conn,
		contactStakeholdingsKey(org, k.Contact) + "." + bus.Token(k.Opportunity) + "." + conn,
	}
}

// StakeholdersOfOpportunity lists the contacts connections link to an
// opportunity, as the index has them (a reader checks the connection).
func (s *Store) StakeholdersOfOpportunity(ctx context.Context, org, opp string) ([]ContactRef, error) {
	tails, err := s.edgeTails(ctx, opportunityStakeholdersKey(org, opp))
	var out []ContactRef
	for _, t := range tails {
		if c, _, ok := strings.Cut(t, "."); ok && !slices.ContainsFunc(out, func(r ContactRef) bool { return r.ID == c }) {
			out = append(out, ContactRef{Org: org, ID: c})
		}
	}
	return out, err
}

// StakeholdingsOf lists the active connections that link a contact to an
// opportunity, checked against the connection rows, by opportunity then
// connection.
func (s *Store) StakeholdingsOf(ctx context.Context, org, contact string) ([]Stakeholder, error) {
	tails, err := s.edgeTails(ctx, contactStakeholdingsKey(org, contact))
	if err != nil {
		return nil, err
	}
	rows := map[string]*Row{}
	for _, t := range tails {
		if _, conn, ok := strings.Cut(t, "."); ok {
			if rows[conn], err = s.Row(ctx, org, "connection", conn); err != nil {
				return nil, err
			}
		}
	}
	return Stakeholdings(contact, tails, rows), nil
}

// StakeholdingsPrefix is the index prefix of the connections linking a
// contact to opportunities; each edge ends in "<opportunity>.<connection>".
func StakeholdingsPrefix(org, contact string) string { return contactStakeholdingsKey(org, contact) }

// StakeholdingConnection is the connection of an edge under
// StakeholdingsPrefix ("" for a malformed one).
func StakeholdingConnection(tail string) string {
	_, conn, _ := strings.Cut(tail, ".")
	return conn
}

// Stakeholdings are the active connections of the edges (tails) under a
// contact's StakeholdingsPrefix that the connection rows (by id) still
// back, by opportunity then connection.
func Stakeholdings(contact string, tails []string, rows map[string]*Row) []Stakeholder {
	var out []Stakeholder
	for _, t := range tails {
		opp, conn, ok := strings.Cut(t, ".")
		if !ok {
			continue
		}
		k, ok := rows[conn].Stakeholder()
		if !ok || k.Contact != contact || k.Opportunity != opp {
			continue // an index entry the row no longer backs
		}
		out = append(out, k)
	}
	slices.SortFunc(out, func(a, b Stakeholder) int {
		return cmp.Or(cmp.Compare(a.Opportunity, b.Opportunity), cmp.Compare(a.Connection, b.Connection))
	})
	return out
}
