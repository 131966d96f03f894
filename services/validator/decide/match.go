package decide

import (
	"math"
	"strings"
)

// Matching: which member the contact describes. An explicit member id or
// profile URL is certain; an email address both have is nearly so; else a
// member of the same full name with a position at the account's company is
// a candidate, weighed feature by feature (weights.go, features.go). Only
// the strongest kind of match present counts. When every candidate of that
// kind leads to the same outcome, that outcome is decided, and all of them
// are listed; when they lead to different ones it is ambiguous, unless
// name candidates are told apart by a wide margin.

// Match tiers, weakest first.
const (
	tierName = iota + 1
	tierEmail
	tierExplicit
)

// Member match confidences of the certain kinds.
const (
	confExplicit = 1.0
	confEmail    = 0.95
)

// candidate is a member the contact may be, and what follows if it is.
type candidate struct {
	m        *Member
	tier     int
	how      string
	conf     float64 // explicit and email: the kind's confidence
	features []Feature
	bits     float64 // the features' sum

	value  int
	reason string
	ev     Evidence
}

// findCandidates lists the members of the strongest kind of match present,
// each member once.
func findCandidates(in Input, e employer) []candidate {
	c := in.Contact
	nameKey := NameKey(c.FirstName, c.LastName)
	urlKey := ProfileURLKey(c.ProfileURL)
	var out []candidate
	seen := map[string]bool{}
	for i := range in.Members {
		m := &in.Members[i]
		if seen[m.ID] {
			continue // the same member twice
		}
		var cand candidate
		switch {
		case c.MemberID != "" && c.MemberID == m.ID, urlKey != "" && urlKey == ProfileURLKey(m.ProfileURL):
			cand = candidate{m: m, tier: tierExplicit, how: "explicit", conf: confExplicit}
		case intersects(c.EmailHashes, m.EmailHashes):
			cand = candidate{m: m, tier: tierEmail, how: "email", conf: confEmail}
		case strings.Contains(nameKey, " ") && nameKey == NameKey(m.FirstName, m.LastName):
			if slug, other := profileSlug(urlKey), profileSlug(ProfileURLKey(m.ProfileURL)); slug != "" && other != "" && slug != other {
				continue // the contact names another profile: a namesake
			}
			if !e.hasPosition(*m) {
				continue // a name alone is never enough
			}
			cand = candidate{m: m, tier: tierName}
		default:
			continue
		}
		seen[m.ID] = true
		out = append(out, cand)
	}
	top := 0
	for _, cand := range out {
		top = max(top, cand.tier)
	}
	var kept []candidate
	for _, cand := range out {
		if cand.tier == top {
			kept = append(kept, cand)
		}
	}
	if top == tierName {
		for i := range kept {
			kept[i].features = nameFeatures(in, e, kept[i].m, len(kept))
		}
	}
	return kept
}

// SharesFullName reports whether a member has the contact's full name:
// only then may a name match, and the name's counts, weigh in.
func SharesFullName(c Contact, members []Member) bool {
	k := NameKey(c.FirstName, c.LastName)
	if !strings.Contains(k, " ") {
		return false
	}
	for _, m := range members {
		if NameKey(m.FirstName, m.LastName) == k {
			return true
		}
	}
	return false
}

// hasPosition reports whether any position of m is at the employer.
func (e employer) hasPosition(m Member) bool {
	for _, p := range m.Positions {
		if how, _, _ := e.match(p); how != "" {
			return true
		}
	}
	return false
}

// decideAmong decides on judged candidates of one kind.
func decideAmong(in Input, cands []candidate) Result {
	for i := range cands {
		cands[i].corroborate(in.Contact.LinkedInStatus)
	}
	// A candidate whose profile says nothing either way (stale, no
	// position at the company, too little) contradicts no one.
	best, informed := 0, false
	for i, c := range cands {
		if in := c.informative(); in && !informed || in == informed && c.strength() > cands[best].strength() {
			best, informed = i, in
		}
	}
	chosen := cands[best]
	for _, c := range cands {
		if c.value == chosen.value || !c.informative() {
			continue
		}
		if chosen.tier != tierName || chosen.bits-c.bits < separationBits {
			return Result{Value: NoFeedback, Reason: ReasonAmbiguous, Evidence: ambiguity(cands, best)}
		}
	}
	ev := chosen.ev
	ev.MemberMatch, ev.Features = chosen.how, chosen.features
	if chosen.tier == tierName {
		ev.MemberMatch, ev.MatchWeight = nameMatchLabel(chosen.features), round2(chosen.bits)
		// The probability that the contact is a member leading to this
		// outcome: the candidates' odds against each other and against
		// the contact being none of them.
		var all, same float64
		for _, c := range cands {
			odds := math.Exp2(c.bits)
			all += odds
			if c.value == chosen.value && c.informative() == informed {
				same += odds
			}
		}
		ev.MemberConfidence = round3(same / (1 + all))
	} else {
		ev.MemberConfidence = round3(chosen.strength())
	}
	for i, c := range cands {
		if i != best {
			ev.Candidates = append(ev.Candidates, Candidate{MemberID: c.m.ID, Match: c.label(), Weight: round2(c.bits), Value: c.value})
		}
	}
	r := Result{Value: chosen.value, Reason: chosen.reason, Confidence: round3(ev.MemberConfidence * ev.CompanyConfidence), Evidence: ev}
	if r.Value == NotAtCompany && r.Confidence < in.Threshold {
		r.Value, r.Reason = NoFeedback, ReasonBelowThresh
	}
	return r
}

// informative: the candidate's profile says left or still there.
func (c candidate) informative() bool { return c.reason == ReasonLeft || c.reason == ReasonStillThere }

// strength orders candidates of one kind: the confidence of a certain
// kind (with corroboration), the weight of a name match.
func (c candidate) strength() float64 {
	if c.tier == tierName {
		return c.bits
	}
	if c.conf >= 1 || len(c.features) == 0 {
		return c.conf
	}
	return probability(math.Log2(c.conf/(1-c.conf)) + c.bits)
}

func (c candidate) label() string {
	if c.tier == tierName {
		return nameMatchLabel(c.features)
	}
	return c.how
}

// corroborate weighs LinkedIn's status on the contact against the outcome
// the candidate leads to: 1 (not at company) agrees with a leave and
// disagrees with "still there"; otherwise it says nothing.
func (c *candidate) corroborate(linkedIn int) {
	if linkedIn == NotAtCompany {
		switch {
		case c.value == NotAtCompany:
			c.features = append(c.features, feature(FeatureCorroboration, "agrees", corroborationWeights["agrees"]))
		case c.reason == ReasonStillThere:
			c.features = append(c.features, feature(FeatureCorroboration, "disagrees", corroborationWeights["disagrees"]))
		}
	}
	c.bits = 0
	for _, f := range c.features {
		c.bits += f.Weight
	}
}

// nameMatchLabel names what a name match rested on:
// "name+company+title+country", "+role", "+function", "+tenure", ...
func nameMatchLabel(fs []Feature) string {
	label := "name+company"
	for _, f := range fs {
		switch {
		case f.Weight <= 0:
		case f.Name == FeatureTitle && f.Level == TitleExact:
			label += "+title"
		case f.Name == FeatureTitle && f.Level == TitleSameRole:
			label += "+role"
		case f.Name == FeatureTitle:
			label += "+function"
		case f.Name == FeatureName:
			if f.Weight > defaultNameWeight+1 {
				label += "+rare_name"
			}
		case f.Name == FeatureCountry, f.Name == FeatureTenure, f.Name == FeatureEmailDomain, f.Name == FeatureUniqueness:
			label += "+" + f.Name
		case f.Name == FeatureCorroboration:
			label += "+corroborated"
		}
	}
	return label
}

// defaultNameWeight is the name's weight when its frequency is unknown.
var defaultNameWeight = round2(math.Log2(nameM / defaultNameFrequency))

// ambiguity is the evidence of an ambiguous match: the strongest member,
// and the others with the outcome each leads to (with whom it is ambiguous).
func ambiguity(cands []candidate, best int) Evidence {
	chosen := cands[best]
	ev := Evidence{MemberID: chosen.m.ID, MemberMatch: chosen.label(), Features: chosen.features,
		ProfileSource: chosen.m.Source, ProfileObservedAt: chosen.m.ObservedAt}
	if chosen.tier == tierName {
		ev.MatchWeight = round2(chosen.bits)
	}
	for i, c := range cands {
		if i != best {
			ev.Candidates = append(ev.Candidates, Candidate{MemberID: c.m.ID, Match: c.label(), Weight: round2(c.bits), Value: c.value})
		}
	}
	return ev
}
