package devstack_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/notatcompany/notatcompany/proto/notatcompany/events/v1"
	"github.com/notatcompany/notatcompany/services/devstack"
	"github.com/notatcompany/notatcompany/services/nacctl"
	"github.com/notatcompany/notatcompany/services/shared/bus"
	"github.com/notatcompany/notatcompany/services/shared/dataverse/dataversetest"
	"github.com/notatcompany/notatcompany/services/shared/deadletters"
	"github.com/notatcompany/notatcompany/services/shared/testkit"
)

// startLoggedStack runs a devstack as startStack does, logging text at
// info, and returns what it logged.
func startLoggedStack(t *testing.T) (*devstack.Stack, *testkit.SyncBuffer) {
	t.Helper()
	stack, running := runStack(t, map[string]string{"NAC_LOG_LEVEL": "info", "NAC_LOG_FORMAT": "text"})
	return stack, running.Logs
}

// storedFlag reads the demo contact's flag inside the stand-in: a GET
// over HTTP would use up the fault injected for the row.
func storedFlag(stack *devstack.Stack) string {
	row, _ := stack.Standin.Row("contacts", devstack.DemoContactID)
	return fmt.Sprint(row["nac_orgchangestatus"])
}

func adminJSON(t *testing.T, stack *devstack.Stack, method, path string, out any) int {
	t.Helper()
	req, _ := http.NewRequest(method, stack.HTTPURL+path, nil)
	req.Header.Set("Authorization", "Bearer "+stack.Secrets.AdminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusOK && out != nil {
		if err := json.Unmarshal(body, out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, path, err, body)
		}
	}
	return resp.StatusCode
}

// A decision Dataverse refuses with 400 is set aside, shown by the admin
// API, and once the cause is gone redriven with nacctl: the flag lands.
// The devstack's log tells the story at info, without a name or an email.
func TestDeadLetterRedriveEndToEnd(t *testing.T) {
	t.Parallel()
	stack, logs := startLoggedStack(t)
	// Dataverse refuses the next operation on the demo contact.
	stack.Standin.Inject(dataversetest.Fault{Status: http.StatusBadRequest, Row: devstack.DemoContactID, Count: 1})

	dvURL := stack.HTTPURL + "/webhooks/dataverse?code=" + stack.Secrets.WebhookKey
	for _, name := range []string{"dataverse-contact-update.json", "dataverse-account-update.json"} {
		if code, body := post(t, dvURL, example(t, name), nil); code != http.StatusAccepted {
			t.Fatalf("%s: status %d %s", name, code, body)
		}
	}
	idle(t, stack) // decided before the profile: the refused decision is the contact's last
	left := example(t, "profile-left.json")
	if code, body := post(t, stack.HTTPURL+"/webhooks/profile", left, map[string]string{"X-LI-Signature": sign(stack.Secrets.ProfileSecret, left)}); code != http.StatusAccepted {
		t.Fatalf("profile-left: status %d %s", code, body)
	}

	var page deadletters.Page
	testkit.Eventually(t, "the refused decision set aside", 15*time.Second, func() bool {
		return adminJSON(t, stack, http.MethodGet, "/admin/deadletters?consumer="+bus.ConsumerWriter, &page) == http.StatusOK && len(page.DeadLetters) == 1
	}, logs.String)
	l := page.DeadLetters[0]
	if l.Kind != deadletters.KindDecision || l.OriginSubject != bus.DecisionSubject(devstack.DemoOrganizationID, devstack.DemoContactID) ||
		l.OrganizationID != devstack.DemoOrganizationID || !strings.Contains(l.Reason, "400") {
		t.Fatalf("dead letter %+v", l)
	}
	var d deadletters.Detail
	if code := adminJSON(t, stack, http.MethodGet, "/admin/deadletters/"+strconv.FormatUint(l.Sequence, 10), &d); code != http.StatusOK {
		t.Fatalf("show: status %d", code)
	}
	if e := d.Event; e == nil || e.Contact != devstack.DemoContactID || e.Value == nil || *e.Value != 1 || e.Rule == "" {
		t.Fatalf("shown event %+v", d.Event)
	}
	if got := storedFlag(stack); got != "0" {
		t.Fatalf("flag %v in the stand-in after the refused write, want 0", got)
	}

	// The cause is gone (the stand-in refused that one write): redrive.
	env := map[string]string{"NAC_API_URL": stack.HTTPURL, "NAC_ADMIN_TOKEN": stack.Secrets.AdminToken, "NAC_ACTOR": "e2e-admin"}
	cfg, err := nacctl.ParseDLQConfig([]string{"dlq", "redrive", strconv.FormatUint(l.Sequence, 10)}, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := nacctl.RunDLQ(context.Background(), cfg, &http.Client{Timeout: 30 * time.Second}, &out); err != nil {
		t.Fatalf("nacctl dlq redrive: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "redriven to "+l.OriginSubject) {
		t.Errorf("nacctl said %q", out.String())
	}
	testkit.Eventually(t, "the redriven flag in the stand-in", 15*time.Second, func() bool { return storedFlag(stack) == "1" }, logs.String)
	if code := adminJSON(t, stack, http.MethodGet, "/admin/deadletters", &page); code != http.StatusOK || len(page.DeadLetters) != 0 {
		t.Errorf("dead letters after the redrive: %d %+v", code, page.DeadLetters)
	}
	action := lastDeadLetterAction(t, stack)
	if action.GetAction() != deadletters.ActionRedrive || action.GetSequence() != l.Sequence || action.GetActor() != "e2e-admin" || action.GetTokenFingerprint() == "" {
		t.Errorf("audit record %v", action)
	}

	// The diary of the flip: the decision, the refused write with its
	// class, the dead letter, its redrive, the write that landed.
	contact := regexp.QuoteMeta(devstack.DemoContactID)
	lines := []string{
		`level=INFO msg=decision .*contact=` + contact + ` .*value=1 previous=0 reason=\S+ confidence=`,
		`level=WARN msg=write .*contact=` + contact + ` .*value=1 outcome=failed reason=\S+ status=400 .*class=bad_request`,
		`level=ERROR msg="message set aside in the dead letter stream" .*consumer=writer .*class=permanent`,
		`level=INFO msg="dead letter redriven" .*sequence=` + strconv.FormatUint(l.Sequence, 10) + ` consumer=writer`,
		`level=INFO msg=write .*contact=` + contact + ` .*value=1 outcome=written reason=\S+ status=204`,
	}
	// The write's line follows its PATCH and audit record by a moment.
	diary := ""
	missing := func() []string {
		diary = logs.String()
		var out []string
		for _, line := range lines {
			if !regexp.MustCompile(line).MatchString(diary) {
				out = append(out, line)
			}
		}
		return out
	}
	testkit.Eventually(t, "the flip's diary in the log", 10*time.Second, func() bool { return len(missing()) == 0 },
		func() string { return fmt.Sprintf("the log has no line matching %q", missing()) })
	for _, personal := range []string{"Avery", "Quinn", "avery.quinn@contoso.com", "Head of Procurement"} {
		if strings.Contains(diary, personal) {
			t.Errorf("the log holds %q", personal)
		}
	}
	if t.Failed() {
		t.Logf("log:\n%s", diary)
	}
}

// lastDeadLetterAction reads the audit trail's last dead letter action of
// the demo organization, as the CLI user.
func lastDeadLetterAction(t *testing.T, stack *devstack.Stack) *eventsv1.DeadLetterAction {
	t.Helper()
	nc, err := nats.Connect(stack.NATSURL, nats.UserInfo(devstack.NATSUserCLI, stack.Secrets.NATS.CLI))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	audit, err := js.Stream(ctx, bus.StreamAudit)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := audit.GetLastMsgForSubject(ctx, bus.AuditSubject("deadletter", devstack.DemoOrganizationID))
	if err != nil {
		t.Fatalf("no dead letter action in the audit trail: %v", err)
	}
	var a eventsv1.DeadLetterAction
	if err := proto.Unmarshal(raw.Data, &a); err != nil {
		t.Fatal(err)
	}
	return &a
}
