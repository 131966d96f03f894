package state

import (
	"context"
	"slices"

	"github.com/notatcompany/notatcompany/services/validator/decide"
)

// Lookups by email alone, as the tests ask them; the service asks
// ContactsMatchable and Candidates, which look by every key at once.

// ContactsByEmail lists contacts, in any organization, with this email hash.
func (s *Store) ContactsByEmail(ctx context.Context, hash string) ([]ContactRef, error) {
	return s.refsUnder(ctx, []string{contactEmailKey(hash)})
}

// MembersByEmail lists the members (not erased) with any of these email hashes.
func (s *Store) MembersByEmail(ctx context.Context, hashes []string) ([]*MemberRecord, error) {
	all, err := s.Candidates(ctx, decide.Contact{EmailHashes: hashes})
	if err != nil {
		return nil, err
	}
	// The index may briefly lag the record; trust the record.
	return slices.DeleteFunc(all, func(m *MemberRecord) bool {
		return !slices.ContainsFunc(hashes, func(h string) bool { return slices.Contains(m.EmailHashes, h) })
	}), nil
}
