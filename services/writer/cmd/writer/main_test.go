package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/notatcompany/notatcompany/proto/notatcompany/events/v1"
	"github.com/notatcompany/notatcompany/services/shared/bus"
	"github.com/notatcompany/notatcompany/services/shared/dataverse/dataversetest"
	"github.com/notatcompany/notatcompany/services/shared/natsembed"
)

const (
	org       = "5f0c7f10-0000-4000-8000-00000000000a"
	contactID = "7d8c4a0e-0000-4000-8000-000000000001"
	flagCol   = "nac_orgchangestatus"
)

// logBuffer collects the service's logs; it is written concurrently.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func eventually(t *testing.T, what string, timeout time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestRun(t *testing.T) {
	ns := natsembed.ForTest(t)
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancelTest := context.WithTimeout(t.Context(), 40*time.Second)
	defer cancelTest()
	if err := bus.Declare(ctx, js, bus.DefaultOptions()); err != nil {
		t.Fatal(err)
	}

	standin := dataversetest.New(dataversetest.Options{ClientID: "nac-writer", ClientSecret: "s3cret"})
	standin.Seed("contacts", contactID, map[string]any{"firstname": "Ada", flagCol: 0})
	srv := httptest.NewServer(standin.Handler())
	defer srv.Close()

	env := map[string]string{
		"NAC_NATS_URL":                ns.ClientURL(),
		"NAC_OPS_ADDR":                "127.0.0.1:0",
		"NAC_LOG_FORMAT":              "json",
		"NAC_SHUTDOWN_TIMEOUT":        "5s",
		"NAC_DATAVERSE_URL":           srv.URL,
		"NAC_DATAVERSE_TOKEN_URL":     srv.URL + dataversetest.TokenPath,
		"NAC_DATAVERSE_CLIENT_ID":     "nac-writer",
		"NAC_DATAVERSE_CLIENT_SECRET": "s3cret",
		"NAC_DATAVERSE_TIMEOUT":       "5s",
		"NAC_HANDLE_TIMEOUT":          "10s",
	}
	logs := &logBuffer{}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- run(runCtx, nil, func(k string) string { return env[k] }, logs) }()
	defer func() {
		if t.Failed() {
			t.Logf("service logs:\n%s", logs)
		}
	}()

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
	eventually(t, "the flag in the stand-in", 5*time.Second, func() bool {
		row, _ := standin.Row("contacts", contactID)
		return row[flagCol] == float64(1)
	})

	audit, err := js.Stream(ctx, bus.StreamAudit)
	if err != nil {
		t.Fatal(err)
	}
	var out eventsv1.WriteOutcome
	eventually(t, "the write outcome on NAC_AUDIT", 5*time.Second, func() bool {
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
	eventually(t, "the decision acknowledged", 5*time.Second, func() bool {
		info, err := cons.Info(ctx)
		return err == nil && info.NumAckPending == 0 && info.NumPending == 0 && info.AckFloor.Stream >= 1
	})

	stop()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run returned %v after cancel, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return within 10s of cancel")
	}
}

func TestRunBadConfiguration(t *testing.T) {
	env := map[string]string{"NAC_DATAVERSE_URL": "https://org.crm.dynamics.com"}
	err := run(t.Context(), nil, func(k string) string { return env[k] }, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "NAC_DATAVERSE_CLIENT_ID") {
		t.Errorf("run = %v, want a configuration error", err)
	}
	if err := run(t.Context(), []string{"-h"}, func(string) string { return "" }, io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("run -h = %v, want flag.ErrHelp", err)
	}
}
