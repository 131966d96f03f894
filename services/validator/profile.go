package validator

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/notatcompany/notatcompany/proto/notatcompany/events/v1"
	"github.com/notatcompany/notatcompany/services/shared/bus"
	"github.com/notatcompany/notatcompany/services/validator/state"
)

// HandleProfile applies one profile source event and re-evaluates the
// contacts it affects.
func (s *Service) HandleProfile(ctx context.Context, msg jetstream.Msg) error {
	subject := msg.Subject()
	switch {
	case strings.HasPrefix(subject, "nac.profile.member."):
		var p eventsv1.ProfileChange
		if err := proto.Unmarshal(msg.Data(), &p); err != nil {
			return bus.Permanent(fmt.Errorf("decode ProfileChange: %w", err))
		}
		if err := validateProfile(&p, subject); err != nil {
			return invalid("ProfileChange", err)
		}
		clampTime(&p.ObservedAt, arrival(msg, p.GetReceivedAt()))
		before, after, changed, err := s.store.ApplyProfile(ctx, &p)
		if err != nil {
			return fmt.Errorf("apply profile of member %s: %w", Pseudonym(p.GetMemberId()), err)
		}
		return s.afterMember(ctx, "profile", before, after, s.counted("profile", changed, msg), p.GetEventId(), redelivered(msg))
	case strings.HasPrefix(subject, "nac.profile.erasure."):
		var e eventsv1.MemberErased
		if err := proto.Unmarshal(msg.Data(), &e); err != nil {
			return bus.Permanent(fmt.Errorf("decode MemberErased: %w", err))
		}
		if err := validateErasure(&e, subject); err != nil {
			return invalid("MemberErased", err)
		}
		clampTime(&e.ObservedAt, arrival(msg, e.GetReceivedAt()))
		return s.erase(ctx, &e, msg)
	case strings.HasPrefix(subject, "nac.profile.company."):
		var c eventsv1.CompanyChange
		if err := proto.Unmarshal(msg.Data(), &c); err != nil {
			return bus.Permanent(fmt.Errorf("decode CompanyChange: %w", err))
		}
		if err := validateCompany(&c, subject); err != nil {
			return invalid("CompanyChange", err)
		}
		clampTime(&c.ObservedAt, arrival(msg, c.GetReceivedAt()))
		return s.applyCompany(ctx, &c, msg)
	default:
		return bus.Permanent(fmt.Errorf("unknown profile subject %s", Pseudonym(subject)))
	}
}

// Pseudonym is how logs and error reasons name a member id or a subject
// that carries one: a short one-way hash, since subjects carry member ids
// base64-encoded (reversible, and an email where the id is one).
func Pseudonym(s string) string {
	sum := sha256.Sum256([]byte("nac.log.v1\x00" + s))
	return "h:" + hex.EncodeToString(sum[:6])
}

func (s *Service) applyCompany(ctx context.Context, c *eventsv1.CompanyChange, msg jetstream.Msg) error {
	before, after, changed, err := s.store.ApplyCompany(ctx, c)
	if err != nil {
		return fmt.Errorf("apply company %s: %w", Pseudonym(c.GetCompanyId()), err)
	}
	if !s.counted("company", changed, msg) {
		return nil
	}
	var accounts []state.ContactRef
	for _, rec := range []*state.CompanyRecord{before, after} {
		if rec == nil {
			continue
		}
		refs, err := s.store.AccountsByCompany(ctx, rec.Name, rec.Domains)
		if err != nil {
			return err
		}
		accounts = append(accounts, refs...)
	}
	var affected []state.ContactRef
	for _, a := range uniq(accounts) {
		refs, err := s.store.ContactsOfAccount(ctx, a.Org, a.ID)
		if err != nil {
			return err
		}
		affected = append(affected, refs...)
	}
	return s.evaluateAll(ctx, "company", affected, c.GetEventId(), redelivered(msg))
}

// afterMember re-evaluates the contacts that could match the member as it
// was or as it is now.
func (s *Service) afterMember(ctx context.Context, kind string, before, after *state.MemberRecord, evaluate bool, cause string, redelivered bool) error {
	if !evaluate {
		return nil
	}
	affected, err := s.store.ContactsMatchableAny(ctx, before, after)
	if err != nil {
		return err
	}
	return s.evaluateAll(ctx, kind, affected, cause, redelivered)
}
