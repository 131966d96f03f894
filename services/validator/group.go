package validator

import (
	"context"
	"fmt"
	"slices"
	"strings"

	eventsv1 "github.com/notatcompany/notatcompany/proto/notatcompany/events/v1"
	"github.com/notatcompany/notatcompany/services/shared/orgs"
	"github.com/notatcompany/notatcompany/services/validator/decide"
	"github.com/notatcompany/notatcompany/services/validator/state"
)

// A group of contacts is read together: each step reads what every
// contact of the group needs from a stream in one request (last decisions
// and contact rows, then accounts, then index edges, then members and
// opportunities, then companies), so that an evaluation costs the same
// few requests for one contact as for a hundred. Sync users, settings and
// system users come from the scope cache.

// groupSize bounds the contacts read together, so that a step's answer
// stays well under the 1024 subjects the server sends in one.
const groupSize = 128

// snapshot is what a group of contacts was decided on.
type snapshot struct {
	scope    *state.Scope
	last     map[state.ContactRef]Last
	kept     map[state.ContactRef]keptRead // the evaluations kept before
	contacts map[state.ContactRef]*state.Row
	views    map[state.ContactRef]decide.Contact // of the contacts
	lookups  map[state.ContactRef]lookups        // of their candidates
	// accountViews are the accounts not deleted, as decide sees them.
	accountViews map[state.RowRef]accountView
	accounts     map[state.RowRef]*state.Row
	edges        map[string][]string
	members      map[string]*state.MemberRecord
	opps         map[state.RowRef]*state.Row
	conns        map[state.RowRef]*state.Row // stakeholder connections
	companies    map[string]decide.Company
	// What each read depended on, by contact, account, prefix, key and id.
	contactDeps, accountDeps, oppDeps, connDeps map[state.RowRef]state.Dep
	edgeDeps, memberDeps, companyDeps           map[string]state.Dep
}

// lookups are how a contact's candidate members are found.
type lookups struct{ explicit, prefixes []string }

// accountView is an account as decide sees it, the index prefixes of its
// company pages and the companies it points at.
type accountView struct {
	account   decide.Account
	prefixes  []string
	companies []string
}

// evaluation is one contact's part of a snapshot: the input of its
// decision and what that rests on.
type evaluation struct {
	ref      state.ContactRef
	row      *state.Row
	last     *LastDecision
	seq      uint64
	in       decide.Input
	settings orgs.Settings
	// Where the reads stood: the contact row's revision, the scope cache.
	contactRev uint64
	scopeAt    state.Floor
	path       *eventsv1.ScopePath // the scope rules tried, for explain
	kept       *keptRead           // what explain's keep needs of the reads
	deps       []state.Dep
	scope      []state.ScopeKey
}

// readGroup reads what deciding refs takes. floor is what the scope cache
// must reflect at least (an admin change's revision).
func (s *Service) readGroup(ctx context.Context, refs []state.ContactRef, floor state.Floor) (*snapshot, error) {
	snap := &snapshot{}
	if err := together(ctx,
		func(ctx context.Context) (err error) {
			snap.contacts, snap.contactDeps, err = s.store.RowsOf(ctx, "contact", refs)
			return err
		},
		func(ctx context.Context) (err error) { snap.last, err = s.decisions.LastOf(ctx, refs); return err },
		func(ctx context.Context) (err error) { snap.scope, err = s.store.Scope().Read(ctx, floor); return err },
		func(ctx context.Context) (err error) { snap.kept, err = s.keptOf(ctx, refs); return err },
	); err != nil {
		return nil, err
	}
	// The row and the last decision were read side by side: a row older
	// than the one that decision saw is read again, and so is the cache
	// when it is behind what that decision read.
	var stale []state.ContactRef
	need := floor
	for _, r := range refs {
		if l := snap.last[r]; l.Decision != nil {
			if snap.contactDeps[r].Rev < l.Decision.ContactRev {
				stale = append(stale, r)
			}
			need = need.Max(l.Decision.ScopeAt)
		}
	}
	if len(stale) > 0 {
		rows, deps, err := s.store.RowsOf(ctx, "contact", stale)
		if err != nil {
			return nil, err
		}
		for _, r := range stale {
			snap.contacts[r], snap.contactDeps[r] = rows[r], deps[r]
		}
	}
	if !snap.scope.At.Covers(need) {
		var err error
		if snap.scope, err = s.store.Scope().Read(ctx, need); err != nil {
			return nil, err
		}
	}
	cols := s.cfg.Columns()
	// The decision's view of each contact and its lookups, once: they
	// hash the emails and normalize the names.
	snap.views = make(map[state.ContactRef]decide.Contact, len(snap.contacts))
	snap.lookups = make(map[state.ContactRef]lookups, len(snap.contacts))
	for r, row := range snap.contacts {
		c := row.Contact(cols)
		snap.views[r] = c
		explicit, prefixes := state.CandidateLookups(c)
		snap.lookups[r] = lookups{explicit: explicit, prefixes: prefixes}
	}

	var accounts []state.RowRef
	for r, c := range snap.views {
		if id := c.AccountID; id != "" {
			accounts = append(accounts, state.RowRef{Org: r.Org, ID: id})
		}
	}
	var err error
	if snap.accounts, snap.accountDeps, err = s.store.RowsOf(ctx, "account", accounts); err != nil {
		return nil, err
	}

	var prefixes []string
	for r, l := range snap.lookups {
		prefixes = append(prefixes, l.prefixes...)
		prefixes = append(prefixes, state.OpportunitiesPrefix(r.Org, r.ID), state.StakeholdingsPrefix(r.Org, r.ID))
	}
	snap.accountViews = make(map[state.RowRef]accountView, len(snap.accounts))
	for r, a := range snap.accounts {
		if !a.Deleted {
			v := accountView{account: a.Account(cols)}
			v.prefixes = state.AccountCompanyPrefixes(v.account)
			snap.accountViews[r] = v
			prefixes = append(prefixes, v.prefixes...)
		}
	}
	if snap.edges, snap.edgeDeps, err = s.store.EdgesOf(ctx, prefixes); err != nil {
		return nil, err
	}

	var keys []string
	var opps, conns []state.RowRef
	for r, l := range snap.lookups {
		keys = append(keys, l.explicit...)
		for _, prefix := range l.prefixes {
			keys = append(keys, snap.edges[prefix]...)
		}
		for _, id := range snap.edges[state.OpportunitiesPrefix(r.Org, r.ID)] {
			opps = append(opps, state.RowRef{Org: r.Org, ID: id})
		}
		for _, t := range snap.edges[state.StakeholdingsPrefix(r.Org, r.ID)] {
			opp, _, _ := strings.Cut(t, ".")
			opps = append(opps, state.RowRef{Org: r.Org, ID: opp})
			conns = append(conns, state.RowRef{Org: r.Org, ID: state.StakeholdingConnection(t)})
		}
	}
	reads := []func(context.Context) error{
		func(ctx context.Context) (err error) {
			snap.members, snap.memberDeps, err = s.store.MembersOf(ctx, keys)
			return err
		},
	}
	if len(opps) > 0 {
		reads = append(reads, func(ctx context.Context) (err error) {
			snap.opps, snap.oppDeps, err = s.store.RowsOf(ctx, "opportunity", opps)
			return err
		})
	}
	if len(conns) > 0 {
		reads = append(reads, func(ctx context.Context) (err error) {
			snap.conns, snap.connDeps, err = s.store.RowsOf(ctx, "connection", conns)
			return err
		})
	}
	if err := together(ctx, reads...); err != nil {
		return nil, err
	}

	var ids []string
	for _, m := range snap.members {
		for _, p := range m.Positions {
			ids = append(ids, p.CompanyID)
		}
	}
	for r, v := range snap.accountViews {
		v.companies = state.AccountCompanyIDs(v.account, v.prefixes, snap.edges)
		snap.accountViews[r] = v
		ids = append(ids, v.companies...)
	}
	if snap.companies, snap.companyDeps, err = s.store.CompaniesOf(ctx, ids); err != nil {
		return nil, err
	}
	// And the parents and successors that are not among them, once.
	var family []string
	for _, c := range snap.companies {
		for _, id := range []string{c.Parent, c.Successor} {
			if _, read := snap.companyDeps[id]; id != "" && !read {
				family = append(family, id)
			}
		}
	}
	if len(family) > 0 {
		more, deps, err := s.store.CompaniesOf(ctx, family)
		if err != nil {
			return nil, err
		}
		for id, c := range more {
			snap.companies[id] = c
		}
		for id, d := range deps {
			snap.companyDeps[id] = d
		}
	}
	return snap, nil
}

// evaluation is ref's part of the snapshot, or nil when the contact is
// not stored; the counts of the contact's name are read for it when a
// member shares the name.
func (s *Service) evaluation(ctx context.Context, snap *snapshot, ref state.ContactRef) (*evaluation, error) {
	row := snap.contacts[ref]
	if row == nil {
		return nil, nil
	}
	ev := &evaluation{ref: ref, row: row, scopeAt: snap.scope.At, contactRev: snap.contactDeps[ref].Rev}
	if l, ok := snap.last[ref]; ok {
		ev.last, ev.seq = l.Decision, l.Seq
	}
	ev.deps = append(ev.deps, snap.contactDeps[ref])
	c := snap.views[ref]
	ev.in = s.baseInput(row, c, ev.last)

	settings, key, err := snap.scope.Settings(ref.Org)
	if err != nil {
		return nil, err
	}
	ev.settings, ev.scope = settings, append(ev.scope, key)
	ev.in.ReflagAfterIgnore = settings.ReflagAfterIgnore
	if settings.Threshold > 0 {
		ev.in.Threshold = settings.Threshold
	}

	var account *state.Row
	var companyIDs, accountCompanies []string
	if c.AccountID != "" {
		aref := state.RowRef{Org: ref.Org, ID: c.AccountID}
		ev.deps = append(ev.deps, snap.accountDeps[aref])
		if account = snap.accounts[aref]; account != nil && !account.Deleted {
			v := snap.accountViews[aref]
			a := v.account
			ev.in.Account = &a
			for _, p := range v.prefixes {
				ev.deps = append(ev.deps, snap.edgeDeps[p])
			}
			accountCompanies = v.companies
			companyIDs = append(companyIDs, accountCompanies...)
		}
	}

	l := snap.lookups[ref]
	keys := slices.Clone(l.explicit)
	for _, p := range l.prefixes {
		ev.deps = append(ev.deps, snap.edgeDeps[p])
		keys = append(keys, snap.edges[p]...)
	}
	seen := map[string]bool{}
	for _, k := range keys {
		if seen[k] {
			continue
		}
		seen[k] = true
		ev.deps = append(ev.deps, snap.memberDeps[k])
		if m := snap.members[k]; m != nil {
			ev.in.Members = append(ev.in.Members, m.Decision())
			for _, p := range m.Positions {
				companyIDs = append(companyIDs, p.CompanyID)
			}
		}
	}

	// The opportunities linked to the contact, by lookup and by
	// connection, as the rows back the index.
	coppPrefix, copkPrefix := state.OpportunitiesPrefix(ref.Org, ref.ID), state.StakeholdingsPrefix(ref.Org, ref.ID)
	ev.deps = append(ev.deps, snap.edgeDeps[coppPrefix], snap.edgeDeps[copkPrefix])
	oppRows, connRows := map[string]*state.Row{}, map[string]*state.Row{}
	for _, id := range snap.edges[coppPrefix] {
		oref := state.RowRef{Org: ref.Org, ID: id}
		ev.deps = append(ev.deps, snap.oppDeps[oref])
		oppRows[id] = snap.opps[oref]
	}
	for _, t := range snap.edges[copkPrefix] {
		opp, _, _ := strings.Cut(t, ".")
		oref, cref := state.RowRef{Org: ref.Org, ID: opp}, state.RowRef{Org: ref.Org, ID: state.StakeholdingConnection(t)}
		ev.deps = append(ev.deps, snap.oppDeps[oref], snap.connDeps[cref])
		oppRows[opp], connRows[cref.ID] = snap.opps[oref], snap.conns[cref]
	}
	stakes := state.Stakeholdings(ref.ID, snap.edges[copkPrefix], connRows)

	if ev.path, err = s.inScope(snap, ev, account, snap.edges[coppPrefix], stakes, oppRows); err != nil {
		return nil, err
	}
	ev.in.InScope = ev.path.GetInScope()
	kept := snap.kept[ref]
	kept.opps = state.OpenOpportunities(ref.ID, snap.edges[coppPrefix], stakes, oppRows)
	ev.kept = &kept
	if decide.SharesFullName(ev.in.Contact, ev.in.Members) {
		var deps []state.Dep
		if ev.in.Names, deps, err = s.store.NameStatsOf(ctx, ref.Org, ev.in.Contact, accountCompanies); err != nil {
			return nil, err
		}
		ev.deps = append(ev.deps, deps...)
	}

	ev.in.Companies = map[string]decide.Company{}
	add := func(id string) {
		if id == "" {
			return
		}
		if d, ok := snap.companyDeps[id]; ok {
			ev.deps = append(ev.deps, d)
		}
		if co, ok := snap.companies[id]; ok {
			ev.in.Companies[id] = co
		}
	}
	for _, id := range uniq(companyIDs) {
		add(id)
	}
	for _, id := range uniq(companyIDs) {
		if co, ok := snap.companies[id]; ok {
			add(co.Parent)
			add(co.Successor)
		}
	}
	return ev, nil
}

// inScope applies the three rules: the contact is owned by a sync user, or
// its account is, or it is linked to an opportunity owned by one (by the
// opportunity's lookups, opps, or by a stakeholder connection, stakes;
// oppRows are the opportunities by id). The path records each rule tried,
// for explain.
func (s *Service) inScope(snap *snapshot, ev *evaluation, account *state.Row, opps []string, stakes []state.Stakeholder,
	oppRows map[string]*state.Row) (*eventsv1.ScopePath, error) {
	path := &eventsv1.ScopePath{}
	try := func(via, row, user string) (bool, error) {
		ok, keys, err := snap.scope.IsSyncUser(ev.ref.Org, user)
		ev.scope = append(ev.scope, keys...)
		if err != nil {
			return false, err
		}
		path.Checks = append(path.Checks, &eventsv1.ScopeCheck{Via: via, UserId: user, RowId: row, SyncUser: ok})
		if ok {
			path.InScope, path.Via, path.UserId = true, via, user
			if via == scopeOpportunityOwner || via == scopeOpportunityConnection {
				path.OpportunityId = row
			}
		}
		return ok, nil
	}
	if ok, err := try(scopeContactOwner, "", ev.row.Owner()); ok || err != nil {
		return path, err
	}
	if account != nil && !account.Deleted {
		if ok, err := try(scopeAccountOwner, account.ID, account.Owner()); ok || err != nil {
			return path, err
		}
	}
	for _, id := range opps {
		opp := oppRows[id]
		if opp == nil || opp.Deleted || !slices.Contains(opp.LinkedContacts(), ev.ref.ID) {
			continue // an index entry the row no longer backs
		}
		if ok, err := try(scopeOpportunityOwner, id, opp.Owner()); ok || err != nil {
			return path, err
		}
	}
	return path, scopeByConnection(path, stakes, oppRows, try)
}

// The scope rules, as a scope path names them.
const (
	scopeContactOwner     = "contact_owner"
	scopeAccountOwner     = "account_owner"
	scopeOpportunityOwner = "opportunity_owner"
)

// evaluationOf reads and returns one contact's evaluation (nil when the
// contact is not stored).
func (s *Service) evaluationOf(ctx context.Context, ref state.ContactRef) (*evaluation, error) {
	snap, err := s.readGroup(ctx, []state.ContactRef{ref}, state.Floor{})
	if err != nil {
		return nil, fmt.Errorf("read contact %s: %w", ref.ID, err)
	}
	return s.evaluation(ctx, snap, ref)
}
