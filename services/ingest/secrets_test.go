package ingest

import (
	"context"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/notatcompany/notatcompany/services/ingest/profilefeed"
	"github.com/notatcompany/notatcompany/services/shared/testkit"
)

func rewrite(t *testing.T, path, value string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(value+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// TestSecretsRotateWithoutRestart follows a Kubernetes Secret through a
// rotation: "new,old" in the mounted files, then "new" alone. Each key is
// accepted from the moment its file says so, the old one until it is
// dropped, and a broken Secret changes nothing.
func TestSecretsRotateWithoutRestart(t *testing.T) {
	t.Parallel()
	const (
		newKey, newSecret, newToken = "dataverse-key-new-0000000", "profile-secret-new-000000", "admin-token-new-000000000"
	)
	dir := t.TempDir()
	files := map[string]string{}
	env := map[string]string{}
	for name, value := range map[string]string{envDataverseKeys: testKey, envProfileSecrets: testSecret, envAdminToken: testAdminToken} {
		files[name] = filepath.Join(dir, strings.ToLower(name))
		rewrite(t, files[name], value)
		env[name+"_FILE"] = files[name]
	}
	cfg, err := ParseConfig(nil, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	logs := &testkit.SyncBuffer{}
	svc := New(cfg, &fakePublisher{}, fakeAdmin{}, nil, slog.New(slog.NewTextHandler(logs, nil)), prometheus.NewRegistry())
	svc.now = func() time.Time { return fixedNow }
	f := &fixture{svc: svc, h: svc.Routes()}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.WatchSecrets(ctx, 5*time.Millisecond) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("WatchSecrets = %v", err)
		}
	}()

	// status of a request with each credential: Dataverse key, profile secret, admin token.
	statuses := func(key, secret, token string) [3]int {
		body := contactFixture(t)
		dv := f.do(t, http.MethodPost, dataverseURL(key), "application/json", body, nil).Code
		ev := profileBody(t, "rot-"+secret)
		pr := f.do(t, http.MethodPost, "/webhooks/profile", "application/json", ev, map[string]string{"X-LI-Signature": profilefeed.Sign(secret, ev)}).Code
		ad := f.do(t, http.MethodGet, "/admin/orgs/"+contactOrg+"/sync-users", "", nil, map[string]string{"Authorization": "Bearer " + token}).Code
		return [3]int{dv, pr, ad}
	}
	taken := [3]int{http.StatusAccepted, http.StatusAccepted, http.StatusOK}
	refused := [3]int{http.StatusUnauthorized, http.StatusUnauthorized, http.StatusUnauthorized}
	eventually := func(what string, key, secret, token string, want [3]int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			got := statuses(key, secret, token)
			if got == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: statuses %v, want %v", what, got, want)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}

	if got := statuses(newKey, newSecret, newToken); got != refused {
		t.Fatalf("new credentials before the rotation: %v", got)
	}
	rewrite(t, files[envDataverseKeys], newKey+","+testKey)
	rewrite(t, files[envProfileSecrets], newSecret+","+testSecret)
	rewrite(t, files[envAdminToken], newToken+","+testAdminToken)
	eventually("during the rotation, the new ones", newKey, newSecret, newToken, taken)
	if got := statuses(testKey, testSecret, testAdminToken); got != taken {
		t.Errorf("during the rotation, the old ones: %v, want %v", got, taken)
	}

	// A broken Secret (a key too short) is refused whole; both keep working.
	rewrite(t, files[envDataverseKeys], "short")
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logs.String(), "secrets not rotated") {
		if time.Now().After(deadline) {
			t.Fatal("the broken Secret was never reported")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got := statuses(newKey, newSecret, newToken); got != taken {
		t.Errorf("after a broken Secret: %v, want the last good set", got)
	}

	rewrite(t, files[envDataverseKeys], newKey)
	rewrite(t, files[envProfileSecrets], newSecret)
	rewrite(t, files[envAdminToken], newToken)
	eventually("after the rotation, the old ones", testKey, testSecret, testAdminToken, refused)
	if got := statuses(newKey, newSecret, newToken); got != taken {
		t.Errorf("after the rotation, the new ones: %v, want %v", got, taken)
	}
	for _, secret := range []string{testKey, newKey, testSecret, newSecret, testAdminToken, newToken, "short"} {
		if strings.Contains(logs.String(), secret) {
			t.Errorf("the log shows a secret: %s", logs)
		}
	}
	if !strings.Contains(logs.String(), "secrets rotated") {
		t.Errorf("no rotation logged: %s", logs)
	}
}

func TestApplySecretsRefusesAnInvalidSet(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	err := f.svc.ApplySecrets(map[string]string{envDataverseKeys: "short", envProfileSecrets: testSecret})
	if err == nil || !strings.Contains(err.Error(), envDataverseKeys) {
		t.Fatalf("ApplySecrets = %v, want the short key named", err)
	}
	if err := f.svc.ApplySecrets(map[string]string{envProfileSecrets: testSecret}); err == nil {
		t.Fatal("took a set without any Dataverse credentials")
	}
	decodeAccepted(t, f.do(t, http.MethodPost, dataverseURL(testKey), "application/json", contactFixture(t), nil), "accepted")
}

// TestLogsIdentifyNoMember: a profile subject carries the member id in
// base64, reversible to an email; a failed publish logs neither.
func TestLogsIdentifyNoMember(t *testing.T) {
	t.Parallel()
	logs := &testkit.SyncBuffer{}
	pub := &fakePublisher{}
	pub.setErr(errors.New("nats: timeout"))
	svc := New(testConfig(), &subjectInError{pub}, nil, nil, slog.New(slog.NewTextHandler(logs, nil)), prometheus.NewRegistry())
	svc.now = func() time.Time { return fixedNow }
	f := &fixture{svc: svc, pub: pub, h: svc.Routes()}
	body := profileChanged(t, "evt-log", "demo-feed")
	decodeProblem(t, f.do(t, http.MethodPost, "/webhooks/profile", "application/json", body, signed(body)), http.StatusServiceUnavailable, "unavailable")
	out := logs.String()
	for _, id := range []string{"m.ada", base64.RawURLEncoding.EncodeToString([]byte("m.ada")), base64.StdEncoding.EncodeToString([]byte("m.ada"))} {
		if strings.Contains(out, id) {
			t.Errorf("the log shows member id %q: %s", id, out)
		}
	}
	if !strings.Contains(out, "nac.profile.member.#") {
		t.Errorf("the log does not say which stream failed: %s", out)
	}
}

// subjectInError fails the way bus.Publisher does: naming the subject.
type subjectInError struct{ *fakePublisher }

func (p *subjectInError) Publish(ctx context.Context, subject, msgID string, data []byte, h nats.Header) error {
	if err := p.fakePublisher.Publish(ctx, subject, msgID, data, h); err != nil {
		return errors.New("publish " + subject + ": " + err.Error())
	}
	return nil
}
