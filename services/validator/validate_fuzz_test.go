package validator

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/notatcompany/notatcompany/proto/notatcompany/events/v1"
	"github.com/notatcompany/notatcompany/services/shared/bus"
)

// FuzzValidate feeds arbitrary bytes to the checks every consumer makes:
// they never panic, and what they accept has the ids its state keys and
// subjects rely on.
func FuzzValidate(f *testing.F) {
	for _, m := range []proto.Message{
		&eventsv1.ProfileChange{EventId: "e", MemberId: "m-1", ObservedAt: at(1), EmailSha256: []string{eventsv1.HashEmail("a@b.c")}},
		&eventsv1.MemberErased{EventId: "e", MemberId: "m-1", ObservedAt: at(1)},
		contactCreate(contactID, email),
		&eventsv1.EvaluateRequest{OrganizationId: org, ContactIds: []string{contactID}, Kind: "account"},
	} {
		data, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var p eventsv1.ProfileChange
		if proto.Unmarshal(data, &p) == nil {
			if err := validateProfile(&p, bus.ProfileMemberSubject(p.GetMemberId())); err == nil {
				if p.GetMemberId() == "" || strings.ContainsAny(p.GetMemberId(), " \r\n\x00") || len(p.GetMemberId()) > maxOutsideID {
					t.Errorf("accepted member id %q", p.GetMemberId())
				}
				for _, h := range p.GetEmailSha256() {
					if strings.Contains(h, ".") || len(h) != 64 {
						t.Errorf("accepted email hash %q", h)
					}
				}
			}
		}
		var e eventsv1.MemberErased
		if proto.Unmarshal(data, &e) == nil && validateErasure(&e, bus.ProfileErasureSubject(e.GetMemberId())) == nil && e.GetMemberId() == "" {
			t.Error("accepted an erasure of no member")
		}
		var ch eventsv1.CrmChange
		if proto.Unmarshal(data, &ch) == nil && validateCRM(&ch, bus.CRMSubject(ch.GetOrganizationId(), ch.GetTable(), ch.GetRowId())) == nil {
			if !guidRE.MatchString(ch.GetOrganizationId()) || !guidRE.MatchString(ch.GetRowId()) {
				t.Errorf("accepted ids %q %q", ch.GetOrganizationId(), ch.GetRowId())
			}
		}
		var r eventsv1.EvaluateRequest
		if proto.Unmarshal(data, &r) == nil && validateWork(&r, bus.WorkSubject(r.GetOrganizationId())) == nil {
			for _, id := range r.GetContactIds() {
				if !guidRE.MatchString(id) {
					t.Errorf("accepted contact id %q", id)
				}
			}
		}
	})
}
