package decide

import "time"

// A decision is judged against what came before it: our last decision
// about the contact and the flag column as the CRM holds it. Recall puts
// what the Ignore rule needs of them into the input; WorthPublishing says
// whether a result differs enough from them to go out.

// Last is what our last decision about a contact said.
type Last struct {
	Value  int
	Digest string
	// Underlying is, for an Ignore, the digest of the evidence the user
	// overrode.
	Underlying string
	// FlagSeen is the version of the flag column the decision saw: a
	// change of the column after it is one the decision did not know of.
	FlagSeen int64
}

// Column is the contact's flag column in the CRM: its value and the
// version (unix ms) of the change that set it.
type Column struct {
	Value int
	At    int64
}

// Recall fills in what the Ignore rule takes from the last decision (nil:
// none) and the flag column's version: the evidence an Ignore overrode,
// when it was set if no decision of ours saw it, and whether the Ignore in
// the contact's column is still the user's word.
func (in *Input) Recall(last *Last, flagAt int64) {
	if last != nil && last.Value == Ignore {
		in.IgnoredDigest = last.Underlying
	}
	if in.Contact.Flag == Ignore && flagAt > 0 {
		in.IgnoredAt = time.UnixMilli(flagAt).UTC()
	}
	// An Ignore the last decision saw and still decided otherwise on is one
	// a re-flag overrode: the column holds our flag now, though our write
	// never comes back (ingest drops it as our own echo). Only a user's
	// change after that decision is their word again.
	if last != nil && last.Value != Ignore && in.Contact.Flag == Ignore && flagAt <= last.FlagSeen {
		in.Contact.Flag = last.Value
	}
}

// WorthPublishing reports whether r goes out: when its value differs from
// the last decision's (or, first time, from the column), when a flag's
// evidence changed, when an Ignore first learns the evidence the user
// overrode, or when a user changed the column since our last decision
// (unless the organization keeps a person's value until the evidence
// changes, keepOverride).
func WorthPublishing(r Result, last *Last, col Column, keepOverride bool) bool {
	if last == nil {
		return r.Value != col.Value
	}
	switch {
	case r.Value != last.Value:
		return true
	case r.Value == NotAtCompany && r.Digest() != last.Digest:
		return true
	case r.Value == Ignore && r.Underlying != last.Underlying && last.Underlying == "":
		return true // remember what the user overrode
	case col.At > last.FlagSeen && col.Value != r.Value && r.Value != Ignore && !keepOverride:
		return true
	}
	return false
}
