package state

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/notatcompany/notatcompany/services/shared/bus"
	"github.com/notatcompany/notatcompany/services/validator/decide"
)

// Name counts: how many of an organization's contacts, and of an
// account's, have a full name; how many of the members the feed sent have
// it, and how many of those held a position at a company; and the two
// populations. Name rarity and uniqueness are weighed on them
// (decide.NameStats).
//
// No key shows a name: a name is an HMAC-SHA256 under a random key kept in
// the bucket, with the organization for the contacts' counts (the same
// name hashes differently in each organization).
//
// Every contact and member has a record of what it is counted under (name
// hash, and account or companies). Counting one moves the counts from its
// record to what its row says now: the counts and the record in one atomic
// batch, each on the revision read (bus.WriteKeys). Two replicas cannot
// both move one record, nor lose each other's increments, and a
// redelivery finds the record moved already. The record is read before
// the row, so that whoever commits last read the row after every earlier
// commit. A count back at zero and an emptied record are written with a
// TTL and vanish: an erased member leaves nothing behind.

const (
	namesStream = "KV_" + bus.BucketNames
	namesBase   = "$KV." + bus.BucketNames + "."
	hashKeyKey  = "hashkey"
	// totalShards spread the population counts over keys, so that a
	// back-fill does not have every replica contend for one.
	totalShards = 16
)

func orgNameCountKey(org, h string) string { return "oc." + bus.Token(org) + "." + h }
func accountNameCountKey(org, account, h string) string {
	return "ac." + bus.Token(org) + "." + bus.Token(account) + "." + h
}
func orgTotalKey(org, shard string) string         { return "ot." + bus.Token(org) + "." + shard }
func memberNameCountKey(h string) string           { return "mn." + h }
func companyNameCountKey(company, h string) string { return "mc." + bus.Token(company) + "." + h }
func membersTotalKey(shard string) string          { return "mt." + shard }
func contactCountedKey(org, contact string) string {
	return "rc." + bus.Token(org) + "." + bus.Token(contact)
}
func memberCountedKey(memberKey string) string { return "rm." + memberKey }

// shardOf is the population count shard of a contact or member.
func shardOf(id string) string {
	sum := sha256.Sum256([]byte(id))
	return strconv.Itoa(int(sum[0]) % totalShards)
}

func namesSubject(key string) string   { return namesBase + key }
func namesKeyOf(subject string) string { return strings.TrimPrefix(subject, namesBase) }

// countedOfContact and countedOfMember list the counts a record is in.
func countedOfContact(org, id string) func(counted) []string {
	return func(c counted) []string {
		if c.Name == "" {
			return nil
		}
		keys := []string{orgNameCountKey(org, c.Name), orgTotalKey(org, shardOf(id))}
		if c.Account != "" {
			keys = append(keys, accountNameCountKey(org, c.Account, c.Name))
		}
		return keys
	}
}
func countedOfMember(memberKey string) func(counted) []string {
	return func(c counted) []string {
		if c.Name == "" {
			return nil
		}
		keys := []string{memberNameCountKey(c.Name), membersTotalKey(shardOf(memberKey))}
		for _, co := range c.Companies {
			keys = append(keys, companyNameCountKey(co, c.Name))
		}
		return keys
	}
}

// counted is what a contact or member is counted under; empty: nothing.
type counted struct {
	Name      string   `json:"n,omitempty"`
	Account   string   `json:"a,omitempty"`
	Companies []string `json:"co,omitempty"`
}

func (c counted) equal(o counted) bool {
	return c.Name == o.Name && c.Account == o.Account && slices.Equal(c.Companies, o.Companies)
}

// nameCounts keeps the counts in the names bucket.
type nameCounts struct {
	js     jetstream.JetStream
	direct *directGets
	key    []byte // of the name hashes
	pop    *populations
	// emptyTTL is how long a zero count or an emptied record stays.
	emptyTTL time.Duration
}

func openNames(ctx context.Context, js jetstream.JetStream, direct *directGets) (*nameCounts, error) {
	kv, err := js.KeyValue(ctx, bus.BucketNames)
	if err != nil {
		return nil, fmt.Errorf("bind bucket %s: %w", bus.BucketNames, err)
	}
	n := &nameCounts{js: js, direct: direct, emptyTTL: time.Minute, pop: newPopulations(direct)}
	// The first replica to start makes the key; the others read it.
	for range 2 {
		e, err := kv.Get(ctx, hashKeyKey)
		if err == nil && len(e.Value()) == 32 {
			n.key = e.Value()
			return n, nil
		}
		if err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
			return nil, fmt.Errorf("read the name hash key: %w", err)
		}
		if err == nil {
			return nil, errors.New("the name hash key in the names bucket is not 32 bytes")
		}
		key := make([]byte, 32)
		_, _ = rand.Read(key) // crypto/rand.Read never fails (Go 1.24+)
		if _, err := kv.Create(ctx, hashKeyKey, key); err != nil && !errors.Is(err, jetstream.ErrKeyExists) {
			return nil, fmt.Errorf("store the name hash key: %w", err)
		}
	}
	return nil, errors.New("the name hash key: contended")
}

func (n *nameCounts) hash(parts ...string) string {
	mac := hmac.New(sha256.New, n.key)
	mac.Write([]byte(strings.Join(parts, "\x00")))
	return hex.EncodeToString(mac.Sum(nil)[:16])
}

// contactHash and memberHash hash a name key (decide.NameKey).
func (n *nameCounts) contactHash(org, name string) string { return n.hash("contact", org, name) }
func (n *nameCounts) memberHash(name string) string       { return n.hash("member", name) }

// read returns the value and revision of each key under subjects (exact
// or wildcards), by key.
func (n *nameCounts) read(ctx context.Context, subjects []string) (map[string]Msg, error) {
	out, _, err := n.readDeps(ctx, subjects)
	return out, err
}

// readDeps is read, with what was read of each subject.
func (n *nameCounts) readDeps(ctx context.Context, subjects []string) (map[string]Msg, []Dep, error) {
	msgs, pos, err := n.direct.lastFor(ctx, namesStream, subjects, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("read %d name counts: %w", len(subjects), err)
	}
	out := make(map[string]Msg, len(msgs))
	for _, m := range msgs {
		if !m.Deleted {
			out[namesKeyOf(m.Subject)] = m
		}
	}
	deps := make([]Dep, len(subjects))
	for i, subj := range subjects {
		deps[i] = Dep{Stream: namesStream, Filter: subj, Pos: pos[i]}
	}
	return out, deps, nil
}

func count(m Msg) int {
	v, _ := strconv.Atoi(string(m.Data))
	return v
}

// move brings the counts of one record to what want says now (read after
// the record, at every attempt); keys lists the counts a record is in.
func (n *nameCounts) move(ctx context.Context, record string, want func(context.Context) (counted, error), keys func(counted) []string) error {
	for attempt := range casRetries {
		got, err := n.read(ctx, []string{namesSubject(record)})
		if err != nil {
			return err
		}
		var cur counted
		m, found := got[record]
		if found {
			if err := json.Unmarshal(m.Data, &cur); err != nil {
				return fmt.Errorf("decode a name count record: %w", err)
			}
		}
		next, err := want(ctx)
		if err != nil {
			return err
		}
		if cur.equal(next) {
			return nil
		}
		delta := map[string]int{}
		for _, k := range keys(cur) {
			delta[k]--
		}
		for _, k := range keys(next) {
			delta[k]++
		}
		var moved []string
		for k, d := range delta {
			if d != 0 {
				moved = append(moved, namesSubject(k))
			}
		}
		slices.Sort(moved)
		counts, err := n.read(ctx, moved)
		if err != nil {
			return err
		}
		writes := make([]bus.KeyWrite, 0, len(moved)+1)
		for _, subject := range moved {
			k := namesKeyOf(subject)
			c := counts[k]
			v := max(count(c)+delta[k], 0)
			w := bus.KeyWrite{Key: k, Value: []byte(strconv.Itoa(v)), Revision: c.Seq}
			if v == 0 {
				w.TTL = n.emptyTTL
			}
			writes = append(writes, w)
		}
		rec := bus.KeyWrite{Key: record, Value: []byte("{}"), Revision: m.Seq}
		if next.Name != "" {
			if rec.Value, err = json.Marshal(next); err != nil {
				return err
			}
		} else {
			rec.TTL = n.emptyTTL
		}
		err = bus.WriteKeys(ctx, n.js, bus.BucketNames, append(writes, rec))
		if slices.ContainsFunc(moved, func(subject string) bool { return isPopulationKey(namesKeyOf(subject)) }) {
			// Even when refused or failed: it may have been stored.
			n.pop.movedHere()
		}
		if !errors.Is(err, bus.ErrKeysChanged) {
			return err
		}
		// Another replica moved a count first: a moment's jitter, so that
		// replicas contending for a key do not keep meeting.
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(mrand.IntN(2*attempt+2)) * time.Millisecond):
		}
	}
	return fmt.Errorf("name counts: still contended after %d attempts", casRetries)
}

// NameCountsMoved reports whether a contact's change moves it in the name
// counts: created, deleted, renamed or moved to another account.
func (s *Store) NameCountsMoved(before, after *Row) bool {
	return s.countedAs(before) != s.countedAs(after)
}

// countedAs is what of a contact's row the counts follow (without the
// hash): the name key and the account; empty when not counted.
func (s *Store) countedAs(row *Row) [2]string {
	if row == nil || row.Deleted {
		return [2]string{}
	}
	c := row.Contact(s.cols)
	if k := decide.NameKey(c.FirstName, c.LastName); strings.Contains(k, " ") {
		return [2]string{k, c.AccountID}
	}
	return [2]string{}
}

// memberCountedAs is what of a member the counts follow: the name key and
// the companies of its positions; empty when not counted.
func memberCountedAs(m *MemberRecord) string {
	if m == nil || m.Erased {
		return ""
	}
	k := decide.NameKey(m.FirstName, m.LastName)
	if !strings.Contains(k, " ") {
		return ""
	}
	return k + "\x00" + strings.Join(memberCompanies(m), "\x00")
}

func memberCompanies(m *MemberRecord) []string {
	var companies []string
	for _, p := range m.Positions {
		if p.CompanyID != "" {
			companies = append(companies, p.CompanyID)
		}
	}
	slices.Sort(companies)
	return slices.Compact(companies)
}

// countContact moves the name counts to the contact as its row stands:
// counted when it is not deleted and has a full name.
func (s *Store) countContact(ctx context.Context, org, id string) error {
	return s.names.move(ctx, contactCountedKey(org, id), func(ctx context.Context) (counted, error) {
		row, err := s.Row(ctx, org, "contact", id)
		if err != nil {
			return counted{}, err
		}
		as := s.countedAs(row)
		if as[0] == "" {
			return counted{}, nil
		}
		return counted{Name: s.names.contactHash(org, as[0]), Account: as[1]}, nil
	}, countedOfContact(org, id))
}

// countMember moves the name counts to the member as stored: counted, with
// the companies of its positions, unless erased or without a full name.
func (s *Store) countMember(ctx context.Context, memberID string) error {
	mk := MemberKey(memberID)
	return s.names.move(ctx, memberCountedKey(mk), func(ctx context.Context) (counted, error) {
		var m MemberRecord
		found, err := getJSON(ctx, s.members, mk, &m)
		if err != nil || !found || m.Erased {
			return counted{}, err
		}
		k := decide.NameKey(m.FirstName, m.LastName)
		if !strings.Contains(k, " ") {
			return counted{}, nil
		}
		return counted{Name: s.names.memberHash(k), Companies: memberCompanies(&m)}, nil
	}, countedOfMember(mk))
}

// NameStats reads, in one request, the counts of the contact's full name:
// the organization's and the account's contacts of the name, the members
// of the name and those who held a position at one of the account's
// companies (the most at any one); the populations come from memory
// (population.go). Nil when the name
// is not a full name, or the contact is not counted yet (stored before
// counts were kept, until a back-fill reads it again): unknown, a name is
// taken as common.
func (s *Store) NameStats(ctx context.Context, org string, c decide.Contact, companies []string) (*decide.NameStats, error) {
	st, _, err := s.NameStatsOf(ctx, org, c, companies)
	return st, err
}

// NameStatsOf is NameStats, with what was read for them.
func (s *Store) NameStatsOf(ctx context.Context, org string, c decide.Contact, companies []string) (*decide.NameStats, []Dep, error) {
	k := decide.NameKey(c.FirstName, c.LastName)
	if !strings.Contains(k, " ") {
		return nil, nil, nil
	}
	hc, hm := s.names.contactHash(org, k), s.names.memberHash(k)
	subjects := []string{namesSubject(orgNameCountKey(org, hc)), namesSubject(memberNameCountKey(hm))}
	if c.AccountID != "" {
		subjects = append(subjects, namesSubject(accountNameCountKey(org, c.AccountID, hc)))
	}
	for _, co := range companies {
		subjects = append(subjects, namesSubject(companyNameCountKey(co, hm)))
	}
	got, deps, err := s.names.readDeps(ctx, subjects)
	if err != nil {
		return nil, nil, err
	}
	st := &decide.NameStats{Contacts: count(got[orgNameCountKey(org, hc)]), Members: count(got[memberNameCountKey(hm)])}
	if st.Contacts == 0 {
		return nil, deps, nil
	}
	if st.Population, err = s.names.pop.of(ctx, org); err != nil {
		return nil, nil, err
	}
	if c.AccountID != "" {
		st.ContactsOnAccount = count(got[accountNameCountKey(org, c.AccountID, hc)])
	}
	for key, m := range got {
		if strings.HasPrefix(key, "mc.") {
			st.MembersAtCompany = max(st.MembersAtCompany, count(m))
		}
	}
	return st, deps, nil
}

// ContactsNamed lists the organization's contacts of c's full name (c
// itself included), from the name index.
func (s *Store) ContactsNamed(ctx context.Context, org string, c decide.Contact) ([]ContactRef, error) {
	k := decide.NameKey(c.FirstName, c.LastName)
	if !strings.Contains(k, " ") {
		return nil, nil
	}
	return s.inOrg(ctx, org, contactNameKey(k)+"."+bus.Token(org))
}
