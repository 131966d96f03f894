package state

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	eventsv1 "github.com/notatcompany/notatcompany/proto/notatcompany/events/v1"
	"github.com/notatcompany/notatcompany/services/shared/bus"
	"github.com/notatcompany/notatcompany/services/validator/decide"
)

// MemberKey is a member's key in the members bucket and in the index: a
// one-way pseudonym of the member id, so that the tombstone an erasure
// leaves (and every key while the member exists) holds neither the id nor
// its subject token. Only someone who already knows the id can find it.
func MemberKey(id string) string {
	sum := sha256.Sum256([]byte("nac.member.v1\x00" + id))
	return "m" + hex.EncodeToString(sum[:16])
}

// MemberRecord is a member as stored: the newest observation, or a
// tombstone once erased, which holds no personal data, only when the
// erasure was observed (and, until the erasure is done everywhere, the
// contacts it must re-evaluate).
type MemberRecord struct {
	ID          string            `json:"id,omitempty"`
	Source      string            `json:"src,omitempty"`
	ObservedAt  int64             `json:"obs"`
	Erased      bool              `json:"erased,omitempty"`
	FirstName   string            `json:"fn,omitempty"`
	LastName    string            `json:"ln,omitempty"`
	ProfileURL  string            `json:"url,omitempty"`
	Country     string            `json:"cc,omitempty"`
	EmailHashes []string          `json:"eh,omitempty"`
	Positions   []decide.Position `json:"pos,omitempty"`
	// Pending are the contacts an erasure still has to re-evaluate: kept
	// so that a redelivered erasure finds them once the edges are gone.
	Pending []ContactRef `json:"pend,omitempty"`
}

// Decision returns the decision package's view of the member.
func (m *MemberRecord) Decision() decide.Member {
	return decide.Member{ID: m.ID, Source: m.Source, ObservedAt: time.UnixMilli(m.ObservedAt).UTC(),
		FirstName: m.FirstName, LastName: m.LastName, ProfileURL: m.ProfileURL, Country: m.Country,
		EmailHashes: m.EmailHashes, Positions: m.Positions}
}

func memberFrom(p *eventsv1.ProfileChange) *MemberRecord {
	m := &MemberRecord{ID: p.GetMemberId(), Source: p.GetSource(), ObservedAt: p.GetObservedAt().AsTime().UnixMilli(),
		FirstName: p.GetFirstName(), LastName: p.GetLastName(), ProfileURL: p.GetProfileUrl(), Country: p.GetCountry()}
	m.EmailHashes = slices.Compact(slices.Sorted(slices.Values(p.GetEmailSha256())))
	for _, pos := range p.GetPositions() {
		m.Positions = append(m.Positions, decide.Position{
			CompanyID: pos.GetCompanyId(), CompanyName: pos.GetCompanyName(), Title: pos.GetTitle(),
			Start: yearMonth(pos.GetStart()), End: yearMonth(pos.GetEnd()), Current: pos.GetCurrent(), Past: pos.GetPast(),
		})
	}
	return m
}

func yearMonth(ym *eventsv1.YearMonth) *decide.YearMonth {
	if ym == nil {
		return nil
	}
	return &decide.YearMonth{Year: int(ym.GetYear()), Month: int(ym.GetMonth())}
}

// memberEdgePrefixes are the index prefixes of a member's edges; every
// edge is <prefix>.<one token>.<member key>.
var memberEdgePrefixes = []string{"memail", "mname", "murl"}

func memberEdges(m *MemberRecord) []string {
	if m == nil || m.Erased {
		return nil
	}
	pk := MemberKey(m.ID)
	var out []string
	for _, h := range m.EmailHashes {
		out = append(out, memberEmailKey(h)+"."+pk)
	}
	if k := decide.NameKey(m.FirstName, m.LastName); strings.Contains(k, " ") {
		out = append(out, memberNameKey(k)+"."+pk)
	}
	if u := decide.ProfileURLKey(m.ProfileURL); u != "" {
		out = append(out, memberURLKey(u)+"."+pk)
	}
	return out
}

// ApplyProfile stores a profile observation unless a newer one is
// stored, and moves the name counts to the member as stored when its name
// or companies changed (and on a redelivery).
func (s *Store) ApplyProfile(ctx context.Context, p *eventsv1.ProfileChange) (before, after *MemberRecord, changed bool, err error) {
	before, after, changed, err = s.applyProfile(ctx, p)
	if err == nil && (!changed || memberCountedAs(before) != memberCountedAs(after)) {
		err = s.countMember(ctx, p.GetMemberId())
	}
	return before, after, changed, err
}

func (s *Store) applyProfile(ctx context.Context, p *eventsv1.ProfileChange) (before, after *MemberRecord, changed bool, err error) {
	next := memberFrom(p)
	key := MemberKey(next.ID)
	err = casUpdate(ctx, s.members, key, func(cur []byte) ([]byte, error) {
		before, after, changed = nil, nil, false
		if cur != nil {
			before = &MemberRecord{}
			if err := json.Unmarshal(cur, before); err != nil {
				return nil, fmt.Errorf("decode member: %w", err)
			}
			// Older observations lose; an erasure wins over anything it
			// follows, and a profile observed after an erasure starts anew.
			if next.ObservedAt < before.ObservedAt || (next.ObservedAt == before.ObservedAt && before.Erased) {
				return nil, nil
			}
		}
		after = next
		data, err := json.Marshal(after)
		if err != nil {
			return nil, err
		}
		if cur != nil && string(cur) == string(data) {
			return nil, nil
		}
		// Two observations of the same instant (two sources, say): the
		// greater encoding wins, so that the order of arrival never decides.
		if before != nil && next.ObservedAt == before.ObservedAt && string(data) < string(cur) {
			after = nil
			return nil, nil
		}
		changed = true
		return data, nil
	})
	if err != nil || !changed {
		return before, after, changed, err
	}
	if before != nil && before.Erased {
		before = nil // a new start: the tombstone matched nobody
	}
	return before, after, true, s.reindex(ctx, memberEdges(before), memberEdges(after), func(ctx context.Context) ([]string, error) {
		return s.liveMemberEdges(ctx, key)
	})
}

func (s *Store) liveMemberEdges(ctx context.Context, key string) ([]string, error) {
	var now MemberRecord
	found, err := getJSON(ctx, s.members, key, &now)
	if !found || err != nil {
		return nil, err
	}
	return memberEdges(&now), nil
}

// EraseMember removes everything the state holds about a member: every
// revision of its record is purged, then a tombstone without the id takes its place, so that an older
// observation arriving late stays erased, and the member's index edges are
// purged. It returns the contacts the member could match, to re-evaluate;
// a redelivered erasure returns them again until ErasureDone. The member
// leaves the name counts, and its record of them goes.
func (s *Store) EraseMember(ctx context.Context, e *eventsv1.MemberErased) (affected []ContactRef, changed bool, err error) {
	affected, changed, err = s.eraseMember(ctx, e)
	if err == nil {
		err = s.countMember(ctx, e.GetMemberId())
	}
	return affected, changed, err
}

func (s *Store) eraseMember(ctx context.Context, e *eventsv1.MemberErased) (affected []ContactRef, changed bool, err error) {
	key := MemberKey(e.GetMemberId())
	at := e.GetObservedAt().AsTime().UnixMilli()
	var pending []ContactRef // of the record this erasure removed, if any
	erased := false
	for range casRetries {
		var cur MemberRecord
		found, err := getJSON(ctx, s.members, key, &cur)
		if err != nil {
			return nil, false, err
		}
		switch {
		case found && cur.Erased && cur.ObservedAt >= at:
			return cur.Pending, false, nil // erased already
		case found && cur.ObservedAt > at:
			// Observed after the erasure: a new start, not to be erased.
			// What this erasure already removed was older.
			return pending, erased, s.sweepMemberEdges(ctx, key)
		case found && cur.Erased:
			pending = cur.Pending // an older erasure, not done yet
		case found:
			refs, err := s.ContactsMatchable(ctx, &cur)
			if err != nil {
				return nil, false, err
			}
			pending = uniqRefs(append(pending, refs...))
		}
		data, err := json.Marshal(&MemberRecord{ObservedAt: at, Erased: true, Pending: pending})
		if err != nil {
			return nil, false, err
		}
		if found {
			if err := eraseSubject(ctx, s.memberStream, "$KV."+bus.BucketMembers+"."+key); err != nil {
				return nil, false, fmt.Errorf("erase member record: %w", err)
			}
			erased = true
		}
		if _, err := s.members.Create(ctx, key, data); errors.Is(err, jetstream.ErrKeyExists) {
			continue // written meanwhile: look again
		} else if err != nil {
			return nil, false, fmt.Errorf("write tombstone: %w", err)
		}
		return pending, true, s.sweepMemberEdges(ctx, key)
	}
	return nil, false, fmt.Errorf("erase member: still contended after %d attempts", casRetries)
}

func uniqRefs(refs []ContactRef) []ContactRef {
	slices.SortFunc(refs, func(a, b ContactRef) int { return strings.Compare(a.Org+"/"+a.ID, b.Org+"/"+b.ID) })
	return slices.Compact(refs)
}

// sweepMemberEdges purges every index edge of the member (those its record
// named and any left over), then puts back those of a record observed
// after the erasure, if one took its place meanwhile.
func (s *Store) sweepMemberEdges(ctx context.Context, key string) error {
	for _, p := range memberEdgePrefixes {
		filter := "$KV." + bus.BucketIndex + "." + p + ".*." + key
		if err := s.indexStream.Purge(ctx, jetstream.WithPurgeSubject(filter)); err != nil {
			return fmt.Errorf("unindex the erased member: %w", err)
		}
	}
	edges, err := s.liveMemberEdges(ctx, key)
	if err != nil {
		return fmt.Errorf("read back after unindexing: %w", err)
	}
	for _, k := range edges {
		if _, err := s.index.Put(ctx, k, []byte{1}); err != nil {
			return fmt.Errorf("index %s: %w", redact(k), err)
		}
	}
	return nil
}

// ErasureDone forgets the contacts an erasure had to re-evaluate, once it
// has, so that the tombstone is no more than an id-less time.
func (s *Store) ErasureDone(ctx context.Context, memberID string) error {
	return casUpdate(ctx, s.members, MemberKey(memberID), func(cur []byte) ([]byte, error) {
		var m MemberRecord
		if cur == nil {
			return nil, nil
		}
		if err := json.Unmarshal(cur, &m); err != nil {
			return nil, fmt.Errorf("decode member: %w", err)
		}
		if !m.Erased || len(m.Pending) == 0 {
			return nil, nil
		}
		m.Pending = nil
		return json.Marshal(&m)
	})
}

// Candidates lists the members (not erased) a contact could be: by explicit
// member id, profile URL, email hashes, and same name.
func (s *Store) Candidates(ctx context.Context, c decide.Contact) ([]*MemberRecord, error) {
	var keys []string
	if c.MemberID != "" {
		keys = append(keys, MemberKey(c.MemberID))
	}
	prefixes := make([]string, 0, len(c.EmailHashes)+2)
	for _, h := range c.EmailHashes {
		prefixes = append(prefixes, memberEmailKey(h))
	}
	if u := decide.ProfileURLKey(c.ProfileURL); u != "" {
		prefixes = append(prefixes, memberURLKey(u))
	}
	if k := decide.NameKey(c.FirstName, c.LastName); strings.Contains(k, " ") {
		prefixes = append(prefixes, memberNameKey(k))
	}
	if len(prefixes) > 0 {
		tails, err := s.edgesUnder(ctx, prefixes...)
		if err != nil {
			return nil, err
		}
		for _, p := range prefixes {
			keys = append(keys, tails[p]...)
		}
	}
	return s.membersByKey(ctx, keys)
}

const membersBase = "$KV." + bus.BucketMembers + "."

// membersByKey reads the members (not erased) with these keys, in one
// request, in the order of keys.
func (s *Store) membersByKey(ctx context.Context, keys []string) ([]*MemberRecord, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	order := map[string]int{}
	subjects := make([]string, 0, len(keys))
	for _, k := range keys {
		if _, seen := order[membersBase+k]; !seen {
			order[membersBase+k] = len(order)
			subjects = append(subjects, membersBase+k)
		}
	}
	msgs, err := s.direct.lastFor(ctx, "KV_"+bus.BucketMembers, subjects)
	if err != nil {
		return nil, fmt.Errorf("read %d members: %w", len(subjects), err)
	}
	slices.SortFunc(msgs, func(a, b lastMsg) int { return order[a.Subject] - order[b.Subject] })
	var out []*MemberRecord
	for _, m := range msgs {
		var rec MemberRecord
		if err := json.Unmarshal(m.Data, &rec); err != nil {
			return nil, fmt.Errorf("decode member: %w", err)
		}
		if !rec.Erased {
			out = append(out, &rec)
		}
	}
	return out, nil
}

// eraseSubject removes every message on subject of stream. Where the
// stream allows it (the member keys), each is overwritten where it is
// stored, not only marked deleted; KV streams refuse that, and are purged.
// Either way no marker is left.
func eraseSubject(ctx context.Context, stream jetstream.Stream, subject string) error {
	if stream.CachedInfo().Config.DenyDelete {
		if err := stream.Purge(ctx, jetstream.WithPurgeSubject(subject)); err != nil {
			return fmt.Errorf("purge %s: %w", subject, err)
		}
		return nil
	}
	for range 64 {
		m, err := stream.GetLastMsgForSubject(ctx, subject)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("find %s: %w", subject, err)
		}
		if err := stream.SecureDeleteMsg(ctx, m.Sequence); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
			return fmt.Errorf("erase %s: %w", subject, err)
		}
	}
	return fmt.Errorf("erase %s: messages keep coming", subject)
}
