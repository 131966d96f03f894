package main

import (
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/notatcompany/notatcompany/services/ingest"
	"github.com/notatcompany/notatcompany/services/shared/testkit"
)

// TestRunRotatesSecretFiles: the running service picks up a rewritten
// secret file (a Kubernetes Secret update), accepting the new secret beside
// the old one, without a restart.
func TestRunRotatesSecretFiles(t *testing.T) {
	t.Parallel()
	const newSecret = "component-profile-secret-new-89"
	ns := testkit.NATSServer(t)
	file := filepath.Join(t.TempDir(), "profile-secret")
	write := func(value string) {
		tmp := file + ".tmp"
		if err := os.WriteFile(tmp, []byte(value+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, file); err != nil {
			t.Fatal(err)
		}
	}
	write(profileSecret)
	env := map[string]string{
		"NAC_NATS_URL":              ns.ClientURL(),
		"NAC_DATAVERSE_WEBHOOK_KEY": webhookKey,
		"NAC_PROFILE_SECRET_FILE":   file,
		"NAC_LOG_LEVEL":             "warn",
	}
	svc := testkit.RunService(t, command().Start, []string{"-http-addr", "127.0.0.1:0", "-ops-addr", "127.0.0.1:0"}, env)

	profile := svc.PublicURL() + "/webhooks/profile"
	post := func(id, secret string) int {
		body := profileEvent(t, id)
		return send(t, http.MethodPost, profile, "application/json", body, map[string]string{"X-LI-Signature": hmacHex(secret, body)}).status
	}
	if got := post("rot-0", newSecret); got != http.StatusUnauthorized {
		t.Fatalf("the new secret before the rotation: %d", got)
	}
	write(newSecret + "," + profileSecret)
	deadline := time.Now().Add(3 * ingest.SecretPollInterval)
	for post("rot-new", newSecret) != http.StatusAccepted {
		if time.Now().After(deadline) {
			t.Fatalf("the new secret was not taken within %v", 3*ingest.SecretPollInterval)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got := post("rot-old", profileSecret); got != http.StatusAccepted {
		t.Errorf("the old secret during the rotation: %d", got)
	}
}
