package decide

import (
	"fmt"
	"math"
)

// A name match is scored Fellegi–Sunter style: each comparison between the
// contact and the member lands at a level, and the level weighs
// log2(m/u) bits, where m is how often a contact and a member who are one
// person compare at that level, and u how often two different people do
// (a contact on the account and another member who worked at the company).
// The prior and the weights add up to the match's log2 odds; the odds of
// the candidates give the probability of each outcome (see match.go).
// Every weight that counted is kept in the evidence.

// Feature is one comparison's contribution to a match.
type Feature struct {
	Name   string  // prior, name, title, country, tenure, email_domain, uniqueness, corroboration
	Level  string  // where the comparison landed
	Weight float64 // bits: log2(m/u), rounded to 0.01
}

// Feature names.
const (
	FeaturePrior         = "prior"
	FeatureName          = "name"
	FeatureTitle         = "title"
	FeatureCountry       = "country"
	FeatureTenure        = "tenure"
	FeatureEmailDomain   = "email_domain"
	FeatureUniqueness    = "uniqueness"
	FeatureCorroboration = "corroboration"
)

// mu is a comparison level's m and u probabilities.
type mu struct{ m, u float64 }

func (p mu) bits() float64 { return math.Log2(p.m / p.u) }

// priorOdds: of the members who worked at a company, the one a contact on
// its account with the same name is, before the name's frequency counts:
// about 1 in 1500 (companies employ some thousands over the years a feed
// covers, and a feed knows most of them, not all).
const priorOdds = 1.0 / 1500

// Name: the folded full names agree (candidates always do). m: names are
// written alike in the CRM and on the profile; u: the frequency of the name.
const (
	nameM = 0.95
	// defaultNameFrequency is the frequency assumed of a name nothing is
	// known about: a common one, so that rarity must be learned to count.
	defaultNameFrequency = 1.0 / 2000
	// minNameFrequency bounds rarity: a name seen once among many is rare,
	// but no sample says how rare beyond that.
	minNameFrequency = 1.0 / 50000
)

var (
	titleWeights = map[string]mu{
		TitleExact:    {0.45, 0.09}, // colleagues often share a title
		TitleSameRole: {0.15, 0.04},
		TitleFunction: {0.15, 0.10},
		TitleDiffers:  {0.20, 0.77}, // CRM titles go stale: a match differs often
	}
	countryWeights = map[string]mu{
		"same":      {0.90, 0.35}, // colleagues mostly share a country
		"different": {0.08, 0.65},
	}
	tenureWeights = map[string]mu{
		"inside": {0.85, 0.35}, // the contact was created while the member was there
		"after":  {0.03, 0.35}, // created a year or more after the member left
		"before": {0.05, 0.30}, // created a year or more before the member joined
	}
	emailDomainWeights = map[string]mu{
		"employer":      {0.90, 0.40}, // most contacts on an account use its domain
		"new_company":   {0.15, 0.005},
		"other_company": {0.04, 0.10},
	}
	// uniqueness: the contact is the only one of its name on the account,
	// and the member the only one of the name at the company.
	uniqueWeight = mu{0.90, 0.75}
	// LinkedIn's msdyn_orgchangestatus = 1 (not at company), compared with
	// what the candidate's profile says.
	corroborationWeights = map[string]mu{
		"agrees":    {0.60, 0.10},
		"disagrees": {0.03, 0.10},
	}
)

// separationBits: namesakes at the company who lead to different outcomes
// are told apart only when the best is 2^10 times likelier than each of
// the others. Namesakes at one company are alike (country, function), so
// the features are not independent between them.
const separationBits = 10

func feature(name, level string, p mu) Feature {
	return Feature{Name: name, Level: level, Weight: round2(p.bits())}
}

// nameFeature weighs the name by its frequency, learned from the
// organization's contacts and the members the feed sent (stats nil: the
// default frequency).
func nameFeature(stats *NameStats) Feature {
	f := defaultNameFrequency
	level := "frequency unknown"
	if stats != nil && stats.Population > 0 {
		// Others with the name: the contact and one member are the pair.
		others := max(stats.Contacts-1, 0) + max(stats.Members-1, 0)
		f = max(float64(others+1)/(float64(stats.Population)+1/defaultNameFrequency), minNameFrequency)
		level = fmt.Sprintf("%d others in %d", others, stats.Population)
	}
	return Feature{Name: FeatureName, Level: level, Weight: round2(math.Log2(nameM / f))}
}

// NameStats are counts of one full name, learned from the organization's
// contacts and the members the feed has sent.
type NameStats struct {
	Contacts          int // the organization's contacts of this name, the contact itself included
	ContactsOnAccount int // of them, those on the contact's account
	Members           int // members of this name the feed has sent
	// MembersAtCompany: of them, those who held a position at the
	// account's company (the most at any one of its pages).
	MembersAtCompany int
	Population       int // the organization's contacts and the members, all names
}

// probability is the probability of log2 odds.
func probability(bits float64) float64 {
	return 1 / (1 + math.Exp2(-bits))
}

func round2(f float64) float64 { return math.Round(f*100) / 100 }
