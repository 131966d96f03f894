package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/notatcompany/notatcompany/proto/notatcompany/events/v1"
	"github.com/notatcompany/notatcompany/services/shared/bus"
	"github.com/notatcompany/notatcompany/services/shared/testkit"
	"github.com/notatcompany/notatcompany/services/validator"
)

const (
	org       = "5f0c7f10-0000-4000-8000-00000000000a"
	contactID = "7d8c4a0e-0000-4000-8000-000000000001"
	accountID = "a1b2c3d4-0000-4000-8000-000000000001"
	email     = "ada@contoso.com"
)

func publish(t *testing.T, ctx context.Context, js jetstream.JetStream, subject, msgID string, m proto.Message) {
	t.Helper()
	data, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, subject, data, jetstream.WithMsgID(msgID)); err != nil {
		t.Fatalf("publish %s: %v", subject, err)
	}
}

const syncUser = "5e5e5e5e-0000-4000-8000-000000000001"

func str(s string) *eventsv1.Value { return &eventsv1.Value{Kind: &eventsv1.Value_String_{String_: s}} }

func TestRun(t *testing.T) {
	js, natsURL := testkit.JetStream(t)
	ctx, cancelTest := context.WithTimeout(t.Context(), 40*time.Second)
	defer cancelTest()

	env := map[string]string{
		"NAC_NATS_URL":         natsURL,
		"NAC_OPS_ADDR":         "127.0.0.1:0",
		"NAC_LOG_FORMAT":       "json",
		"NAC_LOG_LEVEL":        "debug",
		"NAC_SHUTDOWN_TIMEOUT": "5s",
	}
	service := testkit.RunService(t, command().Start, nil, env)

	modified := timestamppb.New(time.Date(2025, 5, 1, 8, 0, 0, 0, time.UTC))
	publish(t, ctx, js, bus.CRMSubject(org, "contact", contactID), "crm-contact-1", &eventsv1.CrmChange{
		EventId: "crm-contact-1", OrganizationId: org, Table: "contact", RowId: contactID,
		Operation: eventsv1.Operation_OPERATION_CREATE, RowModifiedAt: modified,
		Columns: map[string]*eventsv1.Value{
			"firstname": str("Ada"), "emailaddress1": str(email),
			"parentcustomerid": {Kind: &eventsv1.Value_Reference{Reference: &eventsv1.EntityReference{Table: "account", Id: accountID}}},
		},
	})
	publish(t, ctx, js, bus.CRMSubject(org, "account", accountID), "crm-account-1", &eventsv1.CrmChange{
		EventId: "crm-account-1", OrganizationId: org, Table: "account", RowId: accountID,
		Operation: eventsv1.Operation_OPERATION_CREATE, RowModifiedAt: modified,
		Columns: map[string]*eventsv1.Value{"name": str("Contoso Ltd"),
			"ownerid": {Kind: &eventsv1.Value_Reference{Reference: &eventsv1.EntityReference{Table: "systemuser", Id: syncUser}}}},
	})
	// The account's owner becomes a sync user through the admin stream.
	publish(t, ctx, js, bus.AdminSyncUserSubject(org, syncUser), "admin-1", &eventsv1.SyncUserChange{
		EventId: "admin-1", OrganizationId: org, UserId: syncUser, Enabled: true, ChangedAt: modified,
	})
	publish(t, ctx, js, bus.ProfileMemberSubject("m-1"), "feed-1", &eventsv1.ProfileChange{
		EventId: "feed-1", Source: "feed", MemberId: "m-1", EmailSha256: []string{eventsv1.HashEmail(email)},
		ObservedAt: timestamppb.New(time.Now().Add(-time.Hour)),
		Positions: []*eventsv1.Position{
			{CompanyName: "Contoso", Start: &eventsv1.YearMonth{Year: 2018, Month: 1}, End: &eventsv1.YearMonth{Year: 2024, Month: 6}},
			{CompanyName: "Fabrikam", Start: &eventsv1.YearMonth{Year: 2024, Month: 7}, Current: true},
		},
	})

	decisions, err := js.Stream(ctx, bus.StreamDecisions)
	if err != nil {
		t.Fatal(err)
	}
	var d eventsv1.Decision
	testkit.Eventually(t, "the decision on NAC_DECISIONS", 5*time.Second, func() bool {
		raw, err := decisions.GetLastMsgForSubject(ctx, bus.DecisionSubject(org, contactID))
		return err == nil && proto.Unmarshal(raw.Data, &d) == nil
	})
	// The member's part of the evidence is sealed; the service opens it.
	svc, err := validator.Open(ctx, validator.Config{FlagColumn: validator.DefaultFlagColumn}, js, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	ev, err := svc.OpenEvidence(ctx, &d)
	if d.GetValue() != eventsv1.Flag_FLAG_NOT_AT_COMPANY || d.GetReason() != "left_company" || d.GetEvidence().GetMemberId() != "" ||
		err != nil || ev.GetMemberId() != "m-1" || ev.GetCurrentPosition().GetCompanyName() != "Fabrikam" {
		t.Errorf("decision = %v, opened evidence %v (%v)", &d, ev, err)
	}

	// Something that is not a CrmChange is set aside with its reason.
	garbage := []byte("this is not protobuf")
	if _, err := js.Publish(ctx, "nac.crm.x.contact.y", garbage); err != nil {
		t.Fatal(err)
	}
	dead, err := js.Stream(ctx, bus.StreamDeadLetter)
	if err != nil {
		t.Fatal(err)
	}
	var raw *jetstream.RawStreamMsg
	testkit.Eventually(t, "the garbage in NAC_DEADLETTER", 5*time.Second, func() bool {
		raw, err = dead.GetLastMsgForSubject(ctx, bus.DeadLetterSubject(bus.ConsumerValidatorCRM))
		return err == nil
	})
	if !bytes.Equal(raw.Data, garbage) {
		t.Errorf("dead letter data = %q", raw.Data)
	}
	if reason := raw.Header.Get(bus.HeaderDeadReason); !strings.Contains(reason, "decode CrmChange") {
		t.Errorf("%s = %q", bus.HeaderDeadReason, reason)
	}
	if got := raw.Header.Get(bus.HeaderDeadSubject); got != "nac.crm.x.contact.y" {
		t.Errorf("%s = %q", bus.HeaderDeadSubject, got)
	}
	if got := raw.Header.Get(bus.HeaderDeadStream); got != bus.StreamCRM {
		t.Errorf("%s = %q", bus.HeaderDeadStream, got)
	}

	// The ops server answers, with the validator's metrics.
	for path, want := range map[string]string{
		"/readyz":  "ready",
		"/healthz": "ok",
		"/metrics": `nac_validator_decisions_total{nac_service="validator",reason="left_company",value="1"} 1`,
	} {
		resp, err := http.Get(service.OpsURL() + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), want) {
			t.Errorf("GET %s = %d, body without %q:\n%.2000s", path, resp.StatusCode, want, body)
		}
	}

	if err := service.Stop(); err != nil {
		t.Errorf("run returned %v after cancel, want nil", err)
	}
}

func TestRunBadConfiguration(t *testing.T) {
	env := map[string]string{"NAC_CONFIDENCE_THRESHOLD": "2", "NAC_NATS_URL": "nats://127.0.0.1:1"}
	err := command().Run(t.Context(), nil, func(k string) string { return env[k] }, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "NAC_CONFIDENCE_THRESHOLD") {
		t.Errorf("run = %v, want a configuration error", err)
	}
	if err := command().Run(t.Context(), []string{"-h"}, func(string) string { return "" }, io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("run -h = %v, want flag.ErrHelp", err)
	}
}
