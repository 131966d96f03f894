// Package profilefeed decodes and verifies the profile source webhook: signed
// events about member profiles and company pages. It is pure: no I/O.
package profilefeed

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	eventsv1 "github.com/notatcompany/notatcompany/proto/notatcompany/events/v1"
	"github.com/notatcompany/notatcompany/services/shared/problem"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Event types.
const (
	TypeProfileChanged = "profile.changed"
	TypeCompanyChanged = "company.changed"
	TypeMemberErased   = "member.erased"
)

// MaxBatch is the most events one request may carry.
const MaxBatch = 100

// Envelope is one event as a source posts it.
type Envelope struct {
	ID         string          `json:"id"`
	Type       string          `json:"type"`
	Source     string          `json:"source"`
	ObservedAt string          `json:"observedAt"`
	Data       json.RawMessage `json:"data"`
}

// Profile is the data of a profile.changed event.
type Profile struct {
	MemberID    string     `json:"memberId"`
	ProfileURL  string     `json:"profileUrl"`
	FirstName   string     `json:"firstName"`
	LastName    string     `json:"lastName"`
	Country     string     `json:"country"`
	EmailSHA256 []string   `json:"emailSha256"`
	Positions   []Position `json:"positions"`
}

// Position is one job on a profile.
type Position struct {
	CompanyID   string     `json:"companyId"`
	CompanyName string     `json:"companyName"`
	Title       string     `json:"title"`
	Start       *YearMonth `json:"start"`
	End         *YearMonth `json:"end"`
	// Current is nil when the source sends no current field: then a
	// position without an end is current (as profile APIs mark them).
	Current *bool `json:"current"`
}

// YearMonth is a month-precision date.
type YearMonth struct {
	Year  int `json:"year"`
	Month int `json:"month"`
}

// Company is the data of a company.changed event.
type Company struct {
	CompanyID          string   `json:"companyId"`
	Name               string   `json:"name"`
	Domains            []string `json:"domains"`
	ParentCompanyID    string   `json:"parentCompanyId"`
	SuccessorCompanyID string   `json:"successorCompanyId"`
}

// Erasure is the data of a member.erased event.
type Erasure struct {
	MemberID string `json:"memberId"`
}

// Event is one decoded, valid event: exactly one of the pointers is set.
type Event struct {
	ID      string
	Type    string
	Profile *eventsv1.ProfileChange
	Company *eventsv1.CompanyChange
	Erasure *eventsv1.MemberErased
}

// SplitBatch returns the raw events of a body holding one event or an array
// of them, and whether it was an array.
func SplitBatch(body []byte) ([]json.RawMessage, bool, error) {
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) > 0 && trimmed[0] == '[' {
		var items []json.RawMessage
		if err := json.Unmarshal(trimmed, &items); err != nil {
			return nil, true, &problem.FieldError{Field: "/", Reason: "not a JSON array of events: " + err.Error()}
		}
		if len(items) == 0 {
			return nil, true, &problem.FieldError{Field: "/", Reason: "empty batch"}
		}
		if len(items) > MaxBatch {
			return nil, true, &problem.FieldError{Field: "/", Reason: fmt.Sprintf("batch of %d events; at most %d", len(items), MaxBatch)}
		}
		return items, true, nil
	}
	if !json.Valid(trimmed) {
		return nil, false, &problem.FieldError{Field: "/", Reason: "not valid JSON"}
	}
	return []json.RawMessage{trimmed}, false, nil
}

var (
	hashRE = regexp.MustCompile(`^[0-9a-f]{64}$`)
	idRE   = regexp.MustCompile(`^[\x21-\x7e]{1,200}$`)
)

// maxSkew is how far in the future an observation may claim to be.
const maxSkew = 5 * time.Minute

// Decode validates one raw event. Every problem is reported, each naming its
// field; receivedAt is stamped on the event.
func Decode(raw json.RawMessage, receivedAt time.Time) (*Event, error) {
	var env Envelope
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&env); err != nil {
		return nil, &problem.FieldError{Field: "/", Reason: "not an event object: " + err.Error()}
	}
	var v validator
	v.check(idRE.MatchString(env.ID), "/id", "required, 1-200 printable ASCII characters")
	v.check(strings.TrimSpace(env.Source) != "", "/source", "required")
	observed, err := time.Parse(time.RFC3339Nano, env.ObservedAt)
	switch {
	case env.ObservedAt == "":
		v.add("/observedAt", "required")
	case err != nil:
		v.add("/observedAt", "not an RFC 3339 time")
	case observed.After(receivedAt.Add(maxSkew)):
		v.add("/observedAt", "in the future")
	}
	if len(env.Data) == 0 || string(env.Data) == "null" {
		v.add("/data", "required")
	}
	ev := &Event{ID: env.ID, Type: env.Type}
	obs, recv := timestamppb.New(observed), timestamppb.New(receivedAt)
	switch env.Type {
	case TypeProfileChanged:
		var p Profile
		if v.decode(env.Data, &p) {
			ev.Profile = v.profile(&p)
			if ev.Profile != nil {
				ev.Profile.EventId, ev.Profile.Source, ev.Profile.ObservedAt, ev.Profile.ReceivedAt = env.ID, env.Source, obs, recv
			}
		}
	case TypeCompanyChanged:
		var c Company
		if v.decode(env.Data, &c) {
			ev.Company = v.company(&c)
			if ev.Company != nil {
				ev.Company.EventId, ev.Company.Source, ev.Company.ObservedAt, ev.Company.ReceivedAt = env.ID, env.Source, obs, recv
			}
		}
	case TypeMemberErased:
		var e Erasure
		if v.decode(env.Data, &e) {
			v.check(idRE.MatchString(e.MemberID), "/data/memberId", "required, 1-200 printable ASCII characters")
			ev.Erasure = &eventsv1.MemberErased{EventId: env.ID, Source: env.Source, MemberId: e.MemberID, ObservedAt: obs, ReceivedAt: recv}
		}
	case "":
		v.add("/type", "required")
	default:
		v.add("/type", fmt.Sprintf("unknown type %q; want %s, %s or %s", env.Type, TypeProfileChanged, TypeCompanyChanged, TypeMemberErased))
	}
	if err := v.err(); err != nil {
		return nil, err
	}
	return ev, nil
}

type validator struct{ errs []error }

func (v *validator) add(field, reason string) {
	v.errs = append(v.errs, &problem.FieldError{Field: field, Reason: reason})
}
func (v *validator) check(ok bool, field, reason string) {
	if !ok {
		v.add(field, reason)
	}
}
func (v *validator) err() error { return errors.Join(v.errs...) }

func (v *validator) decode(data json.RawMessage, dst any) bool {
	if len(data) == 0 || string(data) == "null" {
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		v.add("/data", err.Error())
		return false
	}
	return true
}

func (v *validator) profile(p *Profile) *eventsv1.ProfileChange {
	v.check(idRE.MatchString(p.MemberID), "/data/memberId", "required, 1-200 printable ASCII characters")
	out := &eventsv1.ProfileChange{
		MemberId: p.MemberID, ProfileUrl: p.ProfileURL, FirstName: p.FirstName, LastName: p.LastName,
		Country: p.Country,
	}
	for i, h := range p.EmailSHA256 {
		v.check(hashRE.MatchString(h), fmt.Sprintf("/data/emailSha256/%d", i), "want 64 lower-case hex digits (SHA-256 of the trimmed, lower-cased address)")
		out.EmailSha256 = append(out.EmailSha256, h)
	}
	for i, pos := range p.Positions {
		field := fmt.Sprintf("/data/positions/%d", i)
		v.check(pos.CompanyID != "" || strings.TrimSpace(pos.CompanyName) != "", field+"/companyName", "companyId or companyName required")
		start := v.yearMonth(pos.Start, field+"/start")
		end := v.yearMonth(pos.End, field+"/end")
		current, past := pos.Current != nil && *pos.Current, pos.Current != nil && !*pos.Current
		if current && end != nil {
			v.add(field+"/end", "a current position has no end")
		}
		if start != nil && end != nil && before(end, start) {
			v.add(field+"/end", "before start")
		}
		out.Positions = append(out.Positions, &eventsv1.Position{
			CompanyId: pos.CompanyID, CompanyName: pos.CompanyName, Title: pos.Title,
			Start: start, End: end, Current: current, Past: past,
		})
	}
	return out
}

func before(a, b *eventsv1.YearMonth) bool {
	return a.Year < b.Year || a.Year == b.Year && a.Month != 0 && b.Month != 0 && a.Month < b.Month
}

func (v *validator) yearMonth(ym *YearMonth, field string) *eventsv1.YearMonth {
	if ym == nil {
		return nil
	}
	v.check(ym.Year >= 1900 && ym.Year <= 2200, field+"/year", "want 1900-2200")
	v.check(ym.Month >= 0 && ym.Month <= 12, field+"/month", "want 1-12, or 0 when unknown")
	return &eventsv1.YearMonth{Year: int32(ym.Year), Month: int32(ym.Month)}
}

func (v *validator) company(c *Company) *eventsv1.CompanyChange {
	v.check(idRE.MatchString(c.CompanyID), "/data/companyId", "required, 1-200 printable ASCII characters")
	v.check(strings.TrimSpace(c.Name) != "", "/data/name", "required")
	out := &eventsv1.CompanyChange{
		CompanyId: c.CompanyID, Name: c.Name, ParentCompanyId: c.ParentCompanyID, SuccessorCompanyId: c.SuccessorCompanyID,
	}
	for i, d := range c.Domains {
		d = strings.ToLower(strings.TrimSpace(d))
		v.check(d != "" && !strings.ContainsAny(d, "/ :@"), fmt.Sprintf("/data/domains/%d", i), "want a bare domain name such as example.com")
		out.Domains = append(out.Domains, d)
	}
	return out
}

// Sign returns the hex HMAC-SHA256 of data keyed with secret: the value of
// X-LI-Signature for a body, and the challengeResponse for a challengeCode.
func Sign(secret string, data []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(data)
	return hex.EncodeToString(mac.Sum(nil))
}

// WellFormedSignature reports whether header has the shape of a signature
// (hex SHA-256, with or without "hmacsha256="), so that a request without
// one is refused before its body is read.
func WellFormedSignature(header string) bool {
	got, err := hex.DecodeString(strings.TrimPrefix(strings.TrimSpace(header), "hmacsha256="))
	return err == nil && len(got) == sha256.Size
}

// Verify reports whether header (with or without the "hmacsha256=" prefix)
// is the signature of body under any of secrets. Comparison is constant time.
func Verify(secrets []string, body []byte, header string) bool {
	got, err := hex.DecodeString(strings.TrimPrefix(strings.TrimSpace(header), "hmacsha256="))
	if err != nil || len(got) != sha256.Size {
		return false
	}
	ok := false
	for _, s := range secrets {
		mac := hmac.New(sha256.New, []byte(s))
		mac.Write(body)
		// No early exit: every secret is tried whatever matched.
		if hmac.Equal(mac.Sum(nil), got) {
			ok = true
		}
	}
	return ok
}

// Challenge codes: LinkedIn sends a UUID. The challenge response is the HMAC
// of the code under the same secret that signs bodies, and the protocol
// leaves no room to set the two apart (a prefix would break the answer
// the source checks), so the shape of the code is the wall: letters,
// digits, '-' and '_' only, which no JSON object or array, and so no event
// or batch, can be written in; JSON numbers (all digits) are refused too.
const (
	MinChallengeCode = 16
	MaxChallengeCode = 128
)

// CheckChallengeCode reports why code is not a challenge code a source
// sends, or nil when it is one.
func CheckChallengeCode(code string) error {
	if len(code) < MinChallengeCode || len(code) > MaxChallengeCode {
		return fmt.Errorf("want %d-%d characters", MinChallengeCode, MaxChallengeCode)
	}
	for i := 0; i < len(code); i++ {
		c := code[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return fmt.Errorf("want only letters, digits, '-' and '_' (a UUID)")
		}
	}
	if json.Valid([]byte(code)) {
		return fmt.Errorf("a JSON value is not a challenge code")
	}
	return nil
}
