package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/notatcompany/notatcompany/services/shared/natsembed"
	"github.com/notatcompany/notatcompany/services/shared/problem"
	"github.com/notatcompany/notatcompany/services/shared/testkit"
)

const (
	webhookKey    = "component-webhook-key-0123"
	profileSecret = "component-profile-secret-4567"
)

func hmacHex(secret string, data []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(data)
	return hex.EncodeToString(mac.Sum(nil))
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func send(t *testing.T, method, url, contentType string, body []byte, header map[string]string) response {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	client := &http.Client{Timeout: 15 * time.Second}
	res, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{res.StatusCode, res.Header, b}
}

func wantProblem(t *testing.T, r response, status int) problem.Details {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body %s", r.status, status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("Content-Type %q, want application/problem+json", ct)
	}
	var p problem.Details
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatalf("problem %q: %v", r.body, err)
	}
	if p.Status != status {
		t.Errorf("problem status %d, want %d", p.Status, status)
	}
	return p
}

func wantOutcome(t *testing.T, r response, outcome string) string {
	t.Helper()
	if r.status != http.StatusAccepted {
		t.Fatalf("status %d, want 202; body %s", r.status, r.body)
	}
	var a struct {
		Outcome string `json:"outcome"`
		EventID string `json:"eventId"`
	}
	if err := json.Unmarshal(r.body, &a); err != nil {
		t.Fatal(err)
	}
	if a.Outcome != outcome {
		t.Errorf("outcome %q, want %q (body %s)", a.Outcome, outcome, r.body)
	}
	return a.EventID
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// edit decodes a JSON object, changes it and encodes it again.
func edit(t *testing.T, body []byte, change func(doc map[string]any)) []byte {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatal(err)
	}
	change(doc)
	out, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func profileEvent(t *testing.T, id string) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{
		"id": id, "type": "profile.changed", "source": "component-feed",
		"observedAt": time.Now().Add(-time.Hour).UTC().Format(time.RFC3339),
		"data": map[string]any{
			"memberId": "m-ada", "firstName": "Ada", "lastName": "Lovelace",
			"positions": []any{map[string]any{"companyId": "c-contoso", "companyName": "Contoso", "current": true,
				"start": map[string]any{"year": 2024, "month": 1}}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// jetStream connects a client of the test's own to url.
func jetStream(t *testing.T, url string) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// streamMsgs is the number of messages stream holds.
func streamMsgs(t *testing.T, js jetstream.JetStream, stream string) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatalf("stream %s: %v", stream, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

func TestRunComponent(t *testing.T) {
	t.Parallel()
	ns := testkit.NATSServer(t)
	env := map[string]string{
		"NAC_NATS_URL":              ns.ClientURL(),
		"NAC_DATAVERSE_WEBHOOK_KEY": webhookKey,
		"NAC_PROFILE_SECRET":        profileSecret,
		"NAC_LOG_LEVEL":             "warn",
	}
	args := []string{"-http-addr", "127.0.0.1:0", "-ops-addr", "127.0.0.1:0", "-dataverse-max-body-bytes", "65536"}
	svc := testkit.RunService(t, command().Start, args, env)

	js := jetStream(t, ns.ClientURL())
	msgs := func(t *testing.T, stream string) uint64 { return streamMsgs(t, js, stream) }
	wantMsgs := func(t *testing.T, stream string, want uint64) {
		t.Helper()
		if got := msgs(t, stream); got != want {
			t.Errorf("%s holds %d messages, want %d", stream, got, want)
		}
	}

	base := svc.PublicURL()
	dataverse := base + "/webhooks/dataverse"
	profile := base + "/webhooks/profile"
	contact := readFile(t, "../../remotecontext/testdata/msdocs-update-contact.json")
	// Another operation on the same row: it would be stored if published.
	otherOperation := func(opID string) []byte {
		return edit(t, contact, func(doc map[string]any) { doc["OperationId"] = opID })
	}

	if n := msgs(t, "NAC_CRM"); n != 0 {
		t.Fatalf("NAC_CRM starts with %d messages", n)
	}

	t.Run("webhook stored once", func(t *testing.T) {
		id := wantOutcome(t, send(t, http.MethodPost, dataverse+"?code="+webhookKey, "application/json", contact, nil), "accepted")
		want := "dv.00aa00aa-bb11-cc22-dd33-44ee44ee44ee.4af10637-4ea2-e711-8122-000d3aa2331c.update.contact.6d81597f-0f9f-e711-8122-000d3aa2331c"
		if id != want {
			t.Errorf("eventId %q, want %q", id, want)
		}
		wantMsgs(t, "NAC_CRM", 1)
		// Dataverse delivers it again: acknowledged, deduplicated.
		wantOutcome(t, send(t, http.MethodPost, dataverse+"?code="+webhookKey, "application/json", contact, nil), "accepted")
		wantMsgs(t, "NAC_CRM", 1)

		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s, err := js.Stream(ctx, "NAC_CRM")
		if err != nil {
			t.Fatal(err)
		}
		m, err := s.GetLastMsgForSubject(ctx, "nac.crm.>")
		if err != nil {
			t.Fatal(err)
		}
		if m.Subject != "nac.crm.00aa00aa-bb11-cc22-dd33-44ee44ee44ee.contact.6d81597f-0f9f-e711-8122-000d3aa2331c" {
			t.Errorf("subject %q", m.Subject)
		}
		if got := m.Header.Get(nats.MsgIdHdr); got != want {
			t.Errorf("Nats-Msg-Id %q, want %q", got, want)
		}
	})

	t.Run("wrong key", func(t *testing.T) {
		p := wantProblem(t, send(t, http.MethodPost, dataverse+"?code=not-the-key-0123456789", "application/json",
			otherOperation("0aaaaaaa-0000-4000-8000-000000000001"), nil), http.StatusUnauthorized)
		if !strings.HasSuffix(p.Type, "/unauthorized") {
			t.Errorf("type %q", p.Type)
		}
		wantMsgs(t, "NAC_CRM", 1)
	})

	t.Run("missing key", func(t *testing.T) {
		wantProblem(t, send(t, http.MethodPost, dataverse, "application/json",
			otherOperation("0aaaaaaa-0000-4000-8000-000000000002"), nil), http.StatusUnauthorized)
		wantMsgs(t, "NAC_CRM", 1)
	})

	t.Run("not JSON", func(t *testing.T) {
		p := wantProblem(t, send(t, http.MethodPost, dataverse+"?code="+webhookKey, "application/json", []byte("{not json"), nil), http.StatusBadRequest)
		if len(p.Errors) == 0 || p.Errors[0].Field == "" || p.Errors[0].Reason == "" {
			t.Errorf("errors %+v: want the field named", p.Errors)
		} else if p.Errors[0].Field != "/" {
			t.Errorf("field %q, want /", p.Errors[0].Field)
		}
	})

	t.Run("text/plain", func(t *testing.T) {
		wantProblem(t, send(t, http.MethodPost, dataverse+"?code="+webhookKey, "text/plain",
			otherOperation("0aaaaaaa-0000-4000-8000-000000000003"), nil), http.StatusUnsupportedMediaType)
		wantMsgs(t, "NAC_CRM", 1)
	})

	t.Run("body over -dataverse-max-body-bytes", func(t *testing.T) {
		big := edit(t, otherOperation("0aaaaaaa-0000-4000-8000-000000000004"), func(doc map[string]any) {
			doc["Padding"] = strings.Repeat("x", 65536)
		})
		wantProblem(t, send(t, http.MethodPost, dataverse+"?code="+webhookKey, "application/json", big, nil), http.StatusRequestEntityTooLarge)
		wantMsgs(t, "NAC_CRM", 1)
	})

	t.Run("table not listed", func(t *testing.T) {
		body := readFile(t, "../../remotecontext/testdata/albanianxrm-create-albxrm_alltypes.json")
		id := wantOutcome(t, send(t, http.MethodPost, dataverse+"?code="+webhookKey, "application/json", body, nil), "ignored")
		if id != "" {
			t.Errorf("eventId %q for an ignored change", id)
		}
		wantMsgs(t, "NAC_CRM", 1)
	})

	t.Run("our own write is a loop", func(t *testing.T) {
		body := edit(t, otherOperation("0aaaaaaa-0000-4000-8000-000000000005"), func(doc map[string]any) {
			doc["SharedVariables"] = []any{map[string]any{"key": "tag", "value": "notatcompany"}}
		})
		wantOutcome(t, send(t, http.MethodPost, dataverse+"?code="+webhookKey, "application/json", body, nil), "loop")
		wantMsgs(t, "NAC_CRM", 1)
	})

	t.Run("profile event", func(t *testing.T) {
		body := profileEvent(t, "evt-component-1")
		id := wantOutcome(t, send(t, http.MethodPost, profile, "application/json", body,
			map[string]string{"X-LI-Signature": hmacHex(profileSecret, body)}), "accepted")
		if id != "evt-component-1" {
			t.Errorf("eventId %q", id)
		}
		wantMsgs(t, "NAC_PROFILE", 1)
	})

	t.Run("profile bad signature", func(t *testing.T) {
		body := profileEvent(t, "evt-component-2")
		p := wantProblem(t, send(t, http.MethodPost, profile, "application/json", body,
			map[string]string{"X-LI-Signature": hmacHex("another-secret-0123456789", body)}), http.StatusUnauthorized)
		if !strings.HasSuffix(p.Type, "/bad-signature") {
			t.Errorf("type %q", p.Type)
		}
		wantMsgs(t, "NAC_PROFILE", 1)
	})

	t.Run("profile challenge", func(t *testing.T) {
		r := send(t, http.MethodGet, profile+"?challengeCode=8f3c2a1e-4b5d-4e6f-9a0b-1c2d3e4f5a6b", "", nil, nil)
		if r.status != http.StatusOK {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
		if ct := r.header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type %q", ct)
		}
		var got struct {
			ChallengeCode     string `json:"challengeCode"`
			ChallengeResponse string `json:"challengeResponse"`
		}
		if err := json.Unmarshal(r.body, &got); err != nil {
			t.Fatal(err)
		}
		if got.ChallengeCode != "8f3c2a1e-4b5d-4e6f-9a0b-1c2d3e4f5a6b" {
			t.Errorf("challengeCode %q", got.ChallengeCode)
		}
		if want := hmacHex(profileSecret, []byte("8f3c2a1e-4b5d-4e6f-9a0b-1c2d3e4f5a6b")); got.ChallengeResponse != want {
			t.Errorf("challengeResponse %q, want %q", got.ChallengeResponse, want)
		}
	})

	t.Run("profile batch half valid", func(t *testing.T) {
		invalid := edit(t, profileEvent(t, "evt-component-4"), func(doc map[string]any) { delete(doc, "source") })
		body := []byte(fmt.Sprintf("[%s,%s]", profileEvent(t, "evt-component-3"), invalid))
		r := send(t, http.MethodPost, profile, "application/json", body,
			map[string]string{"X-LI-Signature": "hmacsha256=" + hmacHex(profileSecret, body)})
		if r.status != http.StatusOK {
			t.Fatalf("status %d, want 200: %s", r.status, r.body)
		}
		var res struct {
			Accepted int `json:"accepted"`
			Refused  int `json:"refused"`
			Results  []struct {
				Index  int    `json:"index"`
				ID     string `json:"id"`
				Status string `json:"status"`
				Errors []struct {
					Field string `json:"field"`
				} `json:"errors"`
			} `json:"results"`
		}
		if err := json.Unmarshal(r.body, &res); err != nil {
			t.Fatal(err)
		}
		if res.Accepted != 1 || res.Refused != 1 || len(res.Results) != 2 {
			t.Fatalf("result %s", r.body)
		}
		if res.Results[0].Status != "accepted" || res.Results[0].ID != "evt-component-3" {
			t.Errorf("first %+v", res.Results[0])
		}
		if res.Results[1].Status != "refused" || res.Results[1].ID != "evt-component-4" ||
			len(res.Results[1].Errors) != 1 || res.Results[1].Errors[0].Field != "/source" {
			t.Errorf("second %+v", res.Results[1])
		}
		wantMsgs(t, "NAC_PROFILE", 2)
	})

	t.Run("metrics", func(t *testing.T) {
		r := send(t, http.MethodGet, svc.OpsURL()+"/metrics", "", nil, nil)
		if r.status != http.StatusOK {
			t.Fatalf("status %d", r.status)
		}
		text := string(r.body)
		for _, want := range []string{
			"# TYPE nac_ingest_requests_total counter",
			// The webhook and its duplicate were both accepted.
			`nac_ingest_requests_total{kind="contact",nac_service="ingest",operation="Update",outcome="accepted",route="dataverse"} 2`,
			`nac_ingest_requests_total{kind="",nac_service="ingest",operation="",outcome="unauthorized",route="dataverse"} 2`,
			`nac_ingest_requests_total{kind="other",nac_service="ingest",operation="Create",outcome="ignored",route="dataverse"} 1`,
			`nac_ingest_requests_total{kind="contact",nac_service="ingest",operation="Update",outcome="loop",route="dataverse"} 1`,
			`nac_ingest_requests_total{kind="profile.changed",nac_service="ingest",operation="",outcome="accepted",route="profile"} 2`,
			"nac_ingest_publish_duration_seconds_count{nac_service=\"ingest\",route=\"dataverse\"} 2",
		} {
			if !strings.Contains(text, want+"\n") {
				t.Errorf("/metrics lacks %q", want)
			}
		}
		if t.Failed() {
			for _, line := range strings.Split(text, "\n") {
				if strings.HasPrefix(line, "nac_ingest_requests_total") {
					t.Log(line)
				}
			}
		}
	})

	// Graceful shutdown.
	if err := svc.Stop(); err != nil {
		t.Errorf("run returned %v after cancel, want nil", err)
	}
	if _, err := net.DialTimeout("tcp", svc.Process.PublicAddrs()[0], time.Second); err == nil {
		t.Error("the public address still accepts connections after run returned")
	}
}

func TestRunRefusesBadConfiguration(t *testing.T) {
	t.Parallel()
	env := map[string]string{
		"NAC_NATS_URL":              "nats://127.0.0.1:1",
		"NAC_DATAVERSE_WEBHOOK_KEY": "short",
		"NAC_PROFILE_SECRET":        profileSecret,
	}
	err := command().Run(context.Background(), []string{"-dataverse-max-body-bytes", "1024"}, func(k string) string { return env[k] }, io.Discard)
	if err == nil {
		t.Fatal("run accepted a short key and a tiny body limit")
	}
	for _, want := range []string{"NAC_DATAVERSE_WEBHOOK_KEY", "NAC_DATAVERSE_MAX_BODY_BYTES=1024"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
}

// TestJetStreamDownThenBack: while the broker is down a webhook gets a 503
// with Retry-After within the publish timeout; once a broker is back on the
// same address and store, the client reconnects, the retried webhook is
// stored once, and what was stored before the outage is still there.
func TestJetStreamDownThenBack(t *testing.T) {
	t.Parallel()
	storeDir := t.TempDir()
	startBroker := func(port int) *server.Server {
		t.Helper()
		ns, err := natsembed.Start(natsembed.Options{Port: port, StoreDir: storeDir})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			ns.Shutdown()
			ns.WaitForShutdown()
		})
		return ns
	}
	ns := startBroker(-1)
	natsURL, port := ns.ClientURL(), ns.Addr().(*net.TCPAddr).Port

	const publishTimeout = time.Second
	env := map[string]string{
		"NAC_NATS_URL":              natsURL,
		"NAC_DATAVERSE_WEBHOOK_KEY": webhookKey,
		"NAC_PROFILE_SECRET":        profileSecret,
		"NAC_LOG_LEVEL":             "error",
	}
	svc := testkit.RunService(t, command().Start, []string{"-http-addr", "127.0.0.1:0", "-ops-addr", "127.0.0.1:0", "-publish-timeout", publishTimeout.String()}, env)

	url := svc.PublicURL() + "/webhooks/dataverse?code=" + webhookKey
	contact := readFile(t, "../../remotecontext/testdata/msdocs-update-contact.json")
	const secondOp = "0ccccccc-0000-4000-8000-000000000002"
	second := edit(t, contact, func(doc map[string]any) { doc["OperationId"] = secondOp })

	firstID := wantOutcome(t, send(t, http.MethodPost, url, "application/json", contact, nil), "accepted")
	if n := streamMsgs(t, jetStream(t, natsURL), "NAC_CRM"); n != 1 {
		t.Fatalf("NAC_CRM holds %d messages after the first webhook, want 1", n)
	}

	// The broker goes away.
	ns.Shutdown()
	ns.WaitForShutdown()
	start := time.Now()
	r := send(t, http.MethodPost, url, "application/json", second, nil)
	elapsed := time.Since(start)
	p := wantProblem(t, r, http.StatusServiceUnavailable)
	if !strings.HasSuffix(p.Type, "/unavailable") {
		t.Errorf("problem type %q", p.Type)
	}
	if ra := r.header.Get("Retry-After"); ra != "5" {
		t.Errorf("Retry-After %q, want 5", ra)
	}
	// Within the publish timeout, with room for a slow machine; never the
	// 60 s Dataverse would wait.
	if elapsed > publishTimeout+2*time.Second {
		t.Errorf("503 after %s; want it within the %s publish timeout", elapsed, publishTimeout)
	}
	svc.WaitReady(t, http.StatusServiceUnavailable)

	// A broker is back, on the same address and store.
	startBroker(port)
	svc.WaitReady(t, http.StatusOK)
	secondID := wantOutcome(t, send(t, http.MethodPost, url, "application/json", second, nil), "accepted")
	if secondID == firstID || !strings.Contains(secondID, secondOp) {
		t.Errorf("second eventId %q (first %q)", secondID, firstID)
	}

	js := jetStream(t, natsURL)
	if n := streamMsgs(t, js, "NAC_CRM"); n != 2 {
		t.Errorf("NAC_CRM holds %d messages, want 2: the first, kept through the restart, and the second once", n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, "NAC_CRM")
	if err != nil {
		t.Fatal(err)
	}
	for seq, want := range map[uint64]string{1: firstID, 2: secondID} {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Errorf("message %d: %v", seq, err)
			continue
		}
		if got := m.Header.Get(nats.MsgIdHdr); got != want {
			t.Errorf("message %d is %q, want %q", seq, got, want)
		}
	}
	if err := svc.Stop(); err != nil {
		t.Errorf("run: %v", err)
	}
}
