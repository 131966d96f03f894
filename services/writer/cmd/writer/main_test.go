package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/notatcompany/notatcompany/proto/notatcompany/events/v1"
	"github.com/notatcompany/notatcompany/services/shared/bus"
	"github.com/notatcompany/notatcompany/services/shared/dataverse/dataversetest"
	"github.com/notatcompany/notatcompany/services/shared/orgs"
	"github.com/notatcompany/notatcompany/services/shared/testkit"
)

const (
	org       = "5f0c7f10-0000-4000-8000-00000000000a"
	contactID = "7d8c4a0e-0000-4000-8000-000000000001"
	flagCol   = "nac_orgchangestatus"
)

// switchOn turns data validation on for org, as the admin API does: until
// then the writer records every decision as disabled.
func switchOn(ctx context.Context, t *testing.T, js jetstream.JetStream, org string) {
	t.Helper()
	kv, err := js.KeyValue(ctx, bus.BucketOrgs)
	if err != nil {
		t.Fatal(err)
	}
	v, err := json.Marshal(orgs.Settings{DataValidation: true, ChangedAt: time.Now().UnixMilli()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, orgs.SettingsKey(org), v); err != nil {
		t.Fatal(err)
	}
}

// writerEnv is the writer's environment on natsURL writing to the stand-in
// at standinURL, with more settings or other values.
func writerEnv(natsURL, standinURL string, more map[string]string) map[string]string {
	env := map[string]string{
		"NAC_NATS_URL":                natsURL,
		"NAC_OPS_ADDR":                "127.0.0.1:0",
		"NAC_LOG_FORMAT":              "json",
		"NAC_SHUTDOWN_TIMEOUT":        "5s",
		"NAC_DATAVERSE_URL":           standinURL,
		"NAC_DATAVERSE_TOKEN_URL":     standinURL + dataversetest.TokenPath,
		"NAC_DATAVERSE_CLIENT_ID":     "nac-writer",
		"NAC_DATAVERSE_CLIENT_SECRET": "s3cret",
		"NAC_DATAVERSE_TIMEOUT":       "5s",
		"NAC_HANDLE_TIMEOUT":          "10s",
	}
	maps.Copy(env, more)
	return env
}

func TestRun(t *testing.T) {
	t.Parallel()
	js, natsURL := testkit.JetStream(t)
	ctx, cancelTest := context.WithTimeout(t.Context(), 40*time.Second)
	defer cancelTest()
	switchOn(ctx, t, js, org)

	standin := dataversetest.New(dataversetest.Options{ClientID: "nac-writer", ClientSecret: "s3cret"})
	standin.Seed("contacts", contactID, map[string]any{"firstname": "Ada", flagCol: 0})
	srv := httptest.NewServer(standin.Handler())
	defer srv.Close()

	svc := testkit.RunService(t, command().Start, nil, writerEnv(natsURL, srv.URL, nil))

	d := &eventsv1.Decision{
		DecisionId: "dec-1", OrganizationId: org, ContactId: contactID,
		Value: eventsv1.Flag_FLAG_NOT_AT_COMPANY, Reason: "left_company", DecidedAt: timestamppb.Now(),
	}
	data, err := proto.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, bus.DecisionSubject(org, contactID), data, jetstream.WithMsgID(d.GetDecisionId())); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, "the flag in the stand-in", 5*time.Second, func() bool {
		row, _ := standin.Row("contacts", contactID)
		return row[flagCol] == float64(1)
	})

	audit, err := js.Stream(ctx, bus.StreamAudit)
	if err != nil {
		t.Fatal(err)
	}
	var out eventsv1.WriteOutcome
	testkit.Eventually(t, "the write outcome on NAC_AUDIT", 5*time.Second, func() bool {
		raw, err := audit.GetLastMsgForSubject(ctx, bus.AuditSubject("write", org))
		return err == nil && proto.Unmarshal(raw.Data, &out) == nil
	})
	if out.GetOutcome() != "written" || out.GetHttpStatus() != 204 || out.GetDecisionId() != "dec-1" || out.GetAttempts() != 1 {
		t.Errorf("write outcome = %v", &out)
	}
	// The message was acknowledged: nothing is left for the writer.
	cons, err := js.Consumer(ctx, bus.StreamDecisions, bus.ConsumerWriter)
	if err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, "the decision acknowledged", 5*time.Second, func() bool {
		info, err := cons.Info(ctx)
		return err == nil && info.NumAckPending == 0 && info.NumPending == 0 && info.AckFloor.Stream >= 1
	})

	if err := svc.Stop(); err != nil {
		t.Errorf("run returned %v after cancel, want nil", err)
	}
}

func TestRunBadConfiguration(t *testing.T) {
	t.Parallel()
	env := map[string]string{"NAC_DATAVERSE_URL": "https://org.crm.dynamics.com"}
	err := command().Run(t.Context(), nil, func(k string) string { return env[k] }, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "NAC_DATAVERSE_CLIENT_ID") {
		t.Errorf("run = %v, want a configuration error", err)
	}
	if err := command().Run(t.Context(), []string{"-h"}, func(string) string { return "" }, io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("run -h = %v, want flag.ErrHelp", err)
	}
}

// TestRunRestartMidBatch: the writer stopped while batches are in flight and
// started again loses no decision and leaves every contact as its latest
// decision says, while newer decisions keep coming in.
func TestRunRestartMidBatch(t *testing.T) {
	t.Parallel()
	const contacts = 100
	js, natsURL := testkit.JetStream(t)
	ctx, cancelTest := context.WithTimeout(t.Context(), 50*time.Second)
	defer cancelTest()
	switchOn(ctx, t, js, org)

	standin := dataversetest.New(dataversetest.Options{ClientID: "nac-writer", ClientSecret: "s3cret"})
	contactOf := func(i int) string { return fmt.Sprintf("7d8c4a0e-0000-4000-8000-%012d", i) }
	for i := range contacts {
		standin.Seed("contacts", contactOf(i), map[string]any{"firstname": "Ada", flagCol: -1})
	}
	// A slow Dataverse: every request takes 200ms, so batches are in flight
	// when the writer stops. The default budget (a burst of 100 operations,
	// then ~20 a second) paces the writes as well.
	standin.Inject(dataversetest.Fault{Delay: 200 * time.Millisecond, Count: 1 << 20})
	srv := httptest.NewServer(standin.Handler())
	defer srv.Close()

	env := writerEnv(natsURL, srv.URL, map[string]string{"NAC_SHUTDOWN_TIMEOUT": "10s", "NAC_BATCH_SIZE": "10", "NAC_WORKERS": "4"})
	start := func() (stop func() error) { return testkit.RunService(t, command().Start, nil, env).Stop }

	// Each contact's decisions alternate (1,0,1 or 0,1,0), so that an older
	// decision written last shows.
	base := time.Now().Add(-time.Hour)
	value := func(i, round int) eventsv1.Flag { return eventsv1.Flag((i + round) % 2) }
	published := map[string]int{} // contact → last round published
	publishRound := func(round int, which func(i int) bool) {
		t.Helper()
		for i := range contacts {
			if !which(i) {
				continue
			}
			d := &eventsv1.Decision{
				DecisionId: fmt.Sprintf("dec-%d-%d", i, round), OrganizationId: org, ContactId: contactOf(i),
				Value: value(i, round), Reason: "left_company", DecidedAt: timestamppb.New(base.Add(time.Duration(round) * time.Second)),
			}
			data, err := proto.Marshal(d)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := js.Publish(ctx, bus.DecisionSubject(org, contactOf(i)), data, jetstream.WithMsgID(d.GetDecisionId())); err != nil {
				t.Fatal(err)
			}
			published[contactOf(i)] = round
		}
	}
	cons, err := js.Consumer(ctx, bus.StreamDecisions, bus.ConsumerWriter)
	if err != nil {
		t.Fatal(err)
	}

	began := time.Now()
	all := func(int) bool { return true }
	publishRound(0, all)
	stop := start()
	testkit.Eventually(t, "the first writes", 10*time.Second, func() bool { return len(standin.Received()) > 0 })
	t.Logf("first writes after %s", time.Since(began))
	// Newer decisions come in while the first batches are in flight, then
	// the writer is stopped mid-batch.
	publishRound(1, all)
	if err := stop(); err != nil {
		t.Errorf("first run returned %v after cancel", err)
	}
	firstRun := len(standin.Received())
	info, err := cons.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.NumPending == 0 && info.NumAckPending == 0 {
		t.Fatalf("the first run finished everything (%d writes): nothing was left for the restart", firstRun)
	}
	t.Logf("first run: %d writes; left: %d pending, %d ack pending (%s)", firstRun, info.NumPending, info.NumAckPending, time.Since(began))

	stop = start()
	defer func() {
		if err := stop(); err != nil {
			t.Errorf("second run returned %v after cancel", err)
		}
	}()
	testkit.Eventually(t, "writes of the second run", 10*time.Second, func() bool { return len(standin.Received()) > firstRun })
	// A third decision for a third of the contacts; the others keep the
	// second, which the first run was writing when it was stopped.
	publishRound(2, func(i int) bool { return i%3 == 0 })
	testkit.Eventually(t, "every decision settled", 40*time.Second, func() bool {
		info, err := cons.Info(ctx)
		return err == nil && info.NumPending == 0 && info.NumAckPending == 0
	})

	t.Logf("settled after %s, %d writes", time.Since(began), len(standin.Received()))
	for i := range contacts {
		c := contactOf(i)
		row, _ := standin.Row("contacts", c)
		if want := float64(value(i, published[c])); row[flagCol] != want {
			t.Errorf("contact %d: flag %v, want %v from its last decision (round %d)", i, row[flagCol], want, published[c])
		}
	}

	// Every contact's last decision is recorded as written; nothing failed.
	audit, err := js.OrderedConsumer(ctx, bus.StreamAudit, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{bus.AuditSubject("write", org)},
	})
	if err != nil {
		t.Fatal(err)
	}
	outcomes := map[string]string{}
	for {
		msgs, err := audit.Fetch(100, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for m := range msgs.Messages() {
			n++
			var o eventsv1.WriteOutcome
			if err := proto.Unmarshal(m.Data(), &o); err != nil {
				t.Fatal(err)
			}
			if o.GetOutcome() == "failed" {
				t.Errorf("failed outcome: %v", &o)
			}
			if prev := outcomes[o.GetDecisionId()]; prev != "written" {
				outcomes[o.GetDecisionId()] = o.GetOutcome()
			}
		}
		if n == 0 {
			break
		}
	}
	for i := range contacts {
		id := fmt.Sprintf("dec-%d-%d", i, published[contactOf(i)])
		if outcomes[id] != "written" {
			t.Errorf("decision %s: outcome %q, want written", id, outcomes[id])
		}
	}
	dead, err := js.Stream(ctx, bus.StreamDeadLetter)
	if err != nil {
		t.Fatal(err)
	}
	if di, err := dead.Info(ctx); err != nil || di.State.Msgs != 0 {
		t.Errorf("dead letters: %v %v", di.State.Msgs, err)
	}
}
