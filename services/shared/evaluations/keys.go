// Package evaluations is the validator's latest evaluation of each contact
// as it keeps it in KV (bus.BucketEvaluations), whatever the outcome, with
// the index keys the admin API's lists page through, and the reviews of
// candidates below the threshold: the layout the validator writes and the
// admin API reads.
package evaluations

import (
	"strings"

	"github.com/notatcompany/notatcompany/services/shared/bus"
)

// Index names: one key per contact flagged, per candidate below the
// threshold, and per open opportunity of a flagged contact.
const (
	IndexFlagged   = "flagged"
	IndexCandidate = "candidate"
	IndexAtRisk    = "atrisk"
)

// Key is where the contact's evaluation is kept.
func Key(org, contact string) string { return bus.Token(org) + ".eval." + bus.Token(contact) }

// ReviewKey is where the review of the contact's candidate evidence is kept.
func ReviewKey(org, contact string) string { return bus.Token(org) + ".review." + bus.Token(contact) }

// FlaggedKey and CandidateKey are the contact's index keys.
func FlaggedKey(org, contact string) string {
	return bus.Token(org) + "." + IndexFlagged + "." + bus.Token(contact)
}
func CandidateKey(org, contact string) string {
	return bus.Token(org) + "." + IndexCandidate + "." + bus.Token(contact)
}

// AtRiskKey is the index key of an open opportunity of a flagged contact.
func AtRiskKey(org, opportunity, contact string) string {
	return bus.Token(org) + "." + IndexAtRisk + "." + bus.Token(opportunity) + "." + bus.Token(contact)
}

// indexFilter matches every key of one index of org.
func indexFilter(org, index string) string { return bus.Token(org) + "." + index + ".>" }

// IndexEntry is the value of an index key: enough to list without reading
// the evaluation, which the admin API reads for the page it shows.
type IndexEntry struct {
	Contact    string  `json:"c"`
	Reason     string  `json:"r"`
	Confidence float64 `json:"p"`
	// Opportunity is set in the at-risk index.
	Opportunity string `json:"o,omitempty"`
	Owner       string `json:"u,omitempty"`
}

// ids splits an index key into what follows the index name: the contact,
// or the opportunity and the contact. Tokens of Dataverse GUIDs are the
// GUIDs themselves.
func ids(key, org, index string) []string {
	rest, ok := strings.CutPrefix(key, bus.Token(org)+"."+index+".")
	if !ok {
		return nil
	}
	return strings.Split(rest, ".")
}
