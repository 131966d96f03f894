package validator

import (
	eventsv1 "github.com/notatcompany/notatcompany/proto/notatcompany/events/v1"
	"github.com/notatcompany/notatcompany/services/validator/decide"
)

// matchEvidence renders how a match was weighed: each feature's weight,
// their sum, and the other members weighed with it. It is member-derived
// evidence, sealed with the rest of the member's part (see seal).
func matchEvidence(e decide.Evidence) ([]*eventsv1.MatchFeature, float64, []*eventsv1.MatchCandidate) {
	var features []*eventsv1.MatchFeature
	for _, f := range e.Features {
		features = append(features, &eventsv1.MatchFeature{Name: f.Name, Level: f.Level, Weight: f.Weight})
	}
	var candidates []*eventsv1.MatchCandidate
	for _, c := range e.Candidates {
		candidates = append(candidates, &eventsv1.MatchCandidate{MemberId: c.MemberID, Match: c.Match, Weight: c.Weight, Value: eventsv1.Flag(c.Value)})
	}
	return features, e.MatchWeight, candidates
}
