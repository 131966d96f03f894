package validator

import (
	"context"

	"github.com/notatcompany/notatcompany/services/validator/state"
)

// contactAndNamesakes are the contacts a change of contact id affects: the
// contact, and, when the change moved it in the name counts (created,
// deleted, renamed, moved to another account), the organization's other
// contacts of its name before and after, whose name is now more or less
// rare and unique. A redelivery takes them too: the first attempt may
// have failed before evaluating them.
func (s *Service) contactAndNamesakes(ctx context.Context, org, id string, before, after *state.Row, redelivered bool) ([]state.ContactRef, error) {
	out := []state.ContactRef{{Org: org, ID: id}}
	if !s.store.NameCountsMoved(before, after) && !redelivered {
		return out, nil
	}
	for _, row := range []*state.Row{before, after} {
		if row == nil || row.Deleted {
			continue
		}
		refs, err := s.store.ContactsNamed(ctx, org, row.Contact(s.cfg.Columns()))
		if err != nil {
			return nil, err
		}
		out = append(out, refs...)
	}
	return out, nil
}
