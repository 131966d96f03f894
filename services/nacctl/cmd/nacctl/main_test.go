package main

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/notatcompany/notatcompany/services/nacctl"
	"github.com/notatcompany/notatcompany/services/shared/dataverse"
	"github.com/notatcompany/notatcompany/services/shared/dataverse/dataversetest"
)

func standin(t *testing.T) (*dataversetest.Server, map[string]string) {
	t.Helper()
	s := dataversetest.New(dataversetest.Options{ClientID: "nac-admin", ClientSecret: "admin-secret"})
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return s, map[string]string{
		"NAC_DATAVERSE_URL":           srv.URL,
		"NAC_DATAVERSE_TOKEN_URL":     srv.URL + dataversetest.TokenPath,
		"NAC_DATAVERSE_CLIENT_ID":     "nac-admin",
		"NAC_DATAVERSE_CLIENT_SECRET": "admin-secret",
		"NAC_PROVISION_WEBHOOK_URL":   "https://nac.example.com/webhooks/dataverse",
		"NAC_DATAVERSE_WEBHOOK_KEY":   "the-ingest-webhook-key,the-old-webhook-key",
	}
}

func nac(t *testing.T, env map[string]string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out bytes.Buffer
	err := run(ctx, args, func(k string) string { return env[k] }, &out)
	return out.String(), err
}

func TestProvisionCheckDeprovision(t *testing.T) {
	s, env := standin(t)

	out, err := nac(t, env, "provision", "--dry-run")
	if err != nil || nacctl.ExitCode(err) != 0 {
		t.Fatalf("dry run: %v\n%s", err, out)
	}
	for _, want := range []string{"COMPONENT", "ACTION", "column contact.nac_orgchangestatus", "create", "view My Opportunities at Risk – Contact Left", "step Update of systemuser", "plan: 25 to create"} {
		if !strings.Contains(out, want) {
			t.Errorf("dry run output lacks %q:\n%s", want, out)
		}
	}
	if len(s.Components()) != 0 {
		t.Fatal("the dry run created something")
	}

	out, err = nac(t, env, "provision")
	if err != nil {
		t.Fatalf("provision: %v\n%s", err, out)
	}
	if !strings.Contains(out, "create     service endpoint notatcompany: webhook to https://nac.example.com/webhooks/dataverse, WebhookKey ... done") ||
		!strings.Contains(out, "summary: 25 created, 1 updated, 0 deleted, 0 unchanged, 0 conflicts; published contact, opportunity") {
		t.Errorf("provision output:\n%s", out)
	}
	var endpoint string
	for _, c := range s.Components() {
		if c.Kind == "serviceendpoints" {
			endpoint = c.ID
		}
	}
	if got := s.AuthValue(endpoint); got != "the-ingest-webhook-key" {
		t.Errorf("the endpoint's key = %q, want the ingest's first key", got)
	}

	out, err = nac(t, env, "provision")
	if err != nil || !strings.Contains(out, "summary: nothing to do: all 26 components are as desired") {
		t.Fatalf("second provision: %v\n%s", err, out)
	}
	out, err = nac(t, env, "provision", "--check")
	if err != nil || !strings.Contains(out, "no drift") {
		t.Fatalf("check: %v\n%s", err, out)
	}

	// Someone disables a step in Dynamics: --check fails and says which.
	disableStep(t, env, "notatcompany: Delete of account")
	out, err = nac(t, env, "provision", "--check")
	if !errors.Is(err, nacctl.ErrDrift) || nacctl.ExitCode(err) != 1 || !strings.Contains(out, "step Delete of account  update") {
		t.Fatalf("check after drift: %v (exit %d)\n%s", err, nacctl.ExitCode(err), out)
	}
	if _, err := nac(t, env, "provision"); err != nil {
		t.Fatal(err)
	}
	if out, err := nac(t, env, "provision", "--check"); err != nil {
		t.Fatalf("check after the repair: %v\n%s", err, out)
	}

	out, err = nac(t, env, "deprovision", "--dry-run")
	if err != nil || strings.Count(out, "  delete  ") != 14 {
		t.Fatalf("deprovision dry run: %v\n%s", err, out)
	}
	out, err = nac(t, env, "deprovision")
	if err != nil || !strings.Contains(out, "summary: 0 created, 0 updated, 14 deleted") {
		t.Fatalf("deprovision: %v\n%s", err, out)
	}
	out, err = nac(t, env, "deprovision")
	if err != nil || !strings.Contains(out, "not registered: nothing to remove") {
		t.Fatalf("second deprovision: %v\n%s", err, out)
	}
	// Columns and views stay; only the registration is missing.
	out, err = nac(t, env, "provision", "--check")
	if nacctl.ExitCode(err) != 1 || strings.Contains(out, "column contact.") || strings.Contains(out, "view ") || !strings.Contains(out, "drift: 14 of 26") {
		t.Fatalf("check after deprovision: %v\n%s", err, out)
	}
}

func disableStep(t *testing.T, env map[string]string, name string) {
	t.Helper()
	c, err := dataverse.New(context.Background(), env["NAC_DATAVERSE_URL"], dataverse.Credentials{
		TokenURL: env["NAC_DATAVERSE_TOKEN_URL"], ClientID: "nac-admin", ClientSecret: "admin-secret"}, dataverse.Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	steps, _ := dataverse.Set("sdkmessageprocessingsteps")
	rows, err := c.List(context.Background(), steps, map[string][]string{"$filter": {"name eq " + dataverse.Quote(name)}}, nil, 0)
	if err != nil || len(rows) != 1 {
		t.Fatalf("find step %s: %v %v", name, rows, err)
	}
	row, _ := dataverse.RowOf("sdkmessageprocessingsteps", rows[0]["sdkmessageprocessingstepid"].(string))
	if err := c.Update(context.Background(), row, map[string]any{"statecode": 1}, nil); err != nil {
		t.Fatal(err)
	}
}

func TestErrorsNameTheComponentAndDataversesCode(t *testing.T) {
	_, env := standin(t)
	env["NAC_PROVISION_PREFIX"] = "mscrm" // Dataverse refuses it
	env["NAC_FLAG_COLUMN"] = "mscrm_orgchangestatus"
	out, err := nac(t, env, "provision")
	if nacctl.ExitCode(err) != 2 || err == nil ||
		!strings.Contains(err.Error(), "publisher notatcompany: Dataverse answered 400, code 0x80044150") ||
		!strings.Contains(err.Error(), "run again to finish") {
		t.Fatalf("err = %v\n%s", err, out)
	}
	if !strings.Contains(out, "create     publisher notatcompany: prefix mscrm ... FAILED") {
		t.Errorf("progress does not show the failure:\n%s", out)
	}
}

func TestConflictsAreReportedAndLeftAlone(t *testing.T) {
	s, env := standin(t)
	s.DefineColumn("contact", "nac_orgchangereason", "Integer")
	out, err := nac(t, env, "provision")
	if nacctl.ExitCode(err) != 2 || !strings.Contains(out, "conflict   column contact.nac_orgchangereason: exists as Integer, not String ... left alone") {
		t.Fatalf("err = %v\n%s", err, out)
	}
	// Everything else was provisioned.
	if !strings.Contains(out, "1 conflicts") || !strings.Contains(out, "24 created") {
		t.Errorf("summary:\n%s", out)
	}
	out, err = nac(t, env, "provision", "--dry-run")
	if err != nil || !strings.Contains(out, "conflict") {
		t.Errorf("a dry run with a conflict: %v\n%s", err, out)
	}
}

func TestBadCommandLine(t *testing.T) {
	_, env := standin(t)
	if _, err := nac(t, env, "frobnicate"); nacctl.ExitCode(err) != 2 {
		t.Errorf("unknown command: %v", err)
	}
	out, err := nac(t, env)
	if nacctl.ExitCode(err) != 2 || !strings.Contains(out, "usage: nacctl") {
		t.Errorf("no command: %v\n%s", err, out)
	}
	delete(env, "NAC_PROVISION_WEBHOOK_URL")
	env["NAC_FLAG_COLUMN"] = "msdyn_orgchangestatus"
	_, err = nac(t, env, "provision", "--dry-run", "--check")
	for _, want := range []string{"NAC_PROVISION_WEBHOOK_URL", "NAC_PROVISION_TAKEOVER_LINKEDIN", "--dry-run and --check"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("config error %v lacks %s", err, want)
		}
	}
	// deprovision needs no webhook settings
	if out, err := nac(t, env, "deprovision", "--dry-run"); err == nil || strings.Contains(err.Error(), "NAC_PROVISION_WEBHOOK_URL") {
		t.Errorf("deprovision: %v\n%s", err, out)
	}
	_ = http.MethodGet
}

// nacctl --version prints the build and exits 0, with or without a command,
// and reaches no Dataverse.
func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"--version"}, {"version"}, {"provision", "--version"}} {
		out, err := nac(t, map[string]string{}, args...)
		if nacctl.ExitCode(err) != 0 || !strings.HasPrefix(out, "nacctl ") || !strings.Contains(out, "commit") {
			t.Errorf("nacctl %v: %v\n%s", args, err, out)
		}
	}
}
