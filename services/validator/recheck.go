package validator

import (
	"context"

	"github.com/notatcompany/notatcompany/services/validator/state"
)

// changedSince returns the contacts of ds, decisions just published,
// whose reads changed since they were made: the check after publishing.
// It asks each stream once what changed under what was read (an answer of
// nothing when nothing did), and the scope cache, current to within its
// lease, whether a key it answered with holds another revision now.
func (s *Service) changedSince(ctx context.Context, ds []*decided) ([]state.ContactRef, error) {
	if len(ds) == 0 {
		return nil, nil
	}
	evs := make([]*evaluation, len(ds))
	for i, d := range ds {
		evs[i] = d.ev
	}
	var deps []state.Dep
	var owner []int
	for i, ev := range evs {
		for _, d := range ev.deps {
			if d.Stream != "" {
				deps = append(deps, d)
				owner = append(owner, i)
			}
		}
	}
	var changed []bool
	var scope *state.Scope
	if err := together(ctx,
		func(ctx context.Context) (err error) { changed, err = s.store.Changed(ctx, deps); return err },
		func(ctx context.Context) (err error) {
			scope, err = s.store.Scope().Read(ctx, state.Floor{})
			return err
		},
	); err != nil {
		return nil, err
	}
	stale := make([]bool, len(evs))
	for i, c := range changed {
		stale[owner[i]] = stale[owner[i]] || c
	}
	var out []state.ContactRef
	for i, ev := range evs {
		for _, k := range ev.scope {
			stale[i] = stale[i] || scope.Changed(k)
		}
		if stale[i] {
			out = append(out, ev.ref)
		}
	}
	return out, nil
}
