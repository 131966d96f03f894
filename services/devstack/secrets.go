package devstack

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
)

// Secrets the devstack generates once and keeps in its data directory, so
// that a restart finds the same keys (and a configured webhook keeps working).
type Secrets struct {
	WebhookKey    string `json:"webhookKey"`
	ProfileSecret string `json:"profileSecret"`
	ClientSecret  string `json:"clientSecret"`
	AdminToken    string `json:"adminToken"`
	// NATS are the embedded server's passwords.
	NATS NATSPasswords `json:"nats"`
}

// loadSecrets takes secrets from the environment, else from path, else
// generates them and writes path (mode 0600).
func loadSecrets(path string, getenv func(string) string) (Secrets, error) {
	var sec Secrets
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return sec, fmt.Errorf("read secrets: %w", err)
	default:
		if err := json.Unmarshal(b, &sec); err != nil {
			return sec, fmt.Errorf("decode %s: %w", path, err)
		}
	}
	stored := sec
	for _, f := range []struct {
		dst *string
		env string
	}{
		{&sec.WebhookKey, "NAC_DATAVERSE_WEBHOOK_KEY"},
		{&sec.ProfileSecret, "NAC_PROFILE_SECRET"},
		{&sec.ClientSecret, "NAC_DATAVERSE_CLIENT_SECRET"},
		{&sec.AdminToken, "NAC_ADMIN_TOKEN"},
		{&sec.NATS.Ingest, ""},
		{&sec.NATS.Validator, ""},
		{&sec.NATS.Writer, ""},
		{&sec.NATS.CLI, ""},
	} {
		if f.env != "" && getenv(f.env) != "" {
			*f.dst = getenv(f.env)
			continue
		}
		if *f.dst == "" {
			*f.dst = randomHex(24)
		}
	}
	if sec != stored {
		b, _ := json.MarshalIndent(sec, "", "  ")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			return sec, fmt.Errorf("write secrets: %w", err)
		}
	}
	return sec, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
