package devstack_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/notatcompany/notatcompany/services/devstack"
	"github.com/notatcompany/notatcompany/services/shared/bus"
	"github.com/notatcompany/notatcompany/services/shared/dataverse/dataversetest"
	"github.com/notatcompany/notatcompany/services/shared/lifecycle"
	"github.com/notatcompany/notatcompany/services/shared/syncjobs"
	"github.com/notatcompany/notatcompany/services/shared/testkit"
)

// startStack runs a devstack on free loopback ports with its data in dir,
// until the test ends or stop.
func startStack(t *testing.T, dir string) (*devstack.Stack, func() error) {
	t.Helper()
	stack, running := runStack(t, map[string]string{"NAC_DATA_DIR": dir, "NAC_LOG_LEVEL": "warn"})
	return stack, running.Stop
}

// runStack runs a devstack on free loopback ports, its settings changed by
// env, until the test ends.
func runStack(t *testing.T, env map[string]string) (*devstack.Stack, *testkit.Running) {
	t.Helper()
	all := map[string]string{
		"NAC_DATA_DIR": t.TempDir(), "NAC_HTTP_ADDR": "127.0.0.1:0", "NAC_OPS_ADDR": "127.0.0.1:0",
		"NAC_STANDIN_ADDR": "127.0.0.1:0", "NAC_NATS_ADDR": "127.0.0.1:-1", "NAC_LOG_LEVEL": "warn",
	}
	maps.Copy(all, env)
	cfg, err := devstack.ParseConfig(nil, func(k string) string { return all[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var stack *devstack.Stack
	running := testkit.RunService(t, func(ctx context.Context, _ []string, getenv func(string) string, stdout io.Writer) (*lifecycle.Process, error) {
		var err error
		if stack, err = devstack.Open(ctx, cfg, getenv, stdout); err != nil {
			return nil, err
		}
		return stack.Process, nil
	}, nil, all)
	settled(t, stack)
	return stack, running
}

// settled waits until the devstack's own start-up work has gone through
// the pipeline (the start's back-fill done, then idle): a test then sees
// the decisions and writes of its own steps alone, however late a loaded
// machine runs the seed's.
func settled(t *testing.T, stack *devstack.Stack) {
	t.Helper()
	testkit.Eventually(t, "the start's back-fill", 60*time.Second, func() bool {
		st, ok := syncStatus(t, stack)
		return ok && st.State == syncjobs.StateDone
	})
	idle(t, stack)
}

// idle waits until every webhook is delivered and no durable consumer has
// a message pending or unacknowledged (one held back for a second pass
// counts as unacknowledged): everything sent so far is decided and
// written. Steps whose evaluations would otherwise overlap (a CRM change
// and a profile, each deciding the contact once) come apart.
func idle(t *testing.T, stack *devstack.Stack) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := stack.Standin.WaitWebhooks(ctx); err != nil {
		t.Fatalf("webhooks: %v", err)
	}
	nc, err := nats.Connect(stack.NATSURL, nats.UserInfo(devstack.NATSUserCLI, stack.Secrets.NATS.CLI))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	busy := ""
	testkit.Eventually(t, "the pipeline idle", 60*time.Second, func() bool {
		for _, name := range []string{bus.StreamCRM, bus.StreamProfile, bus.StreamAdmin, bus.StreamWork, bus.StreamSync, bus.StreamDecisions} {
			s, err := js.Stream(ctx, name)
			if err != nil {
				busy = err.Error()
				return false
			}
			consumers := s.ListConsumers(ctx)
			for info := range consumers.Info() {
				if info.Config.Durable != "" && (info.NumPending > 0 || info.NumAckPending > 0) {
					busy = fmt.Sprintf("%s: %d pending, %d unacknowledged", info.Name, info.NumPending, info.NumAckPending)
					return false
				}
			}
			if err := consumers.Err(); err != nil {
				busy = err.Error()
				return false
			}
		}
		return true
	}, func() string { return "last: " + busy })
}

func example(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "scripts", "examples", name))
	if err != nil {
		t.Fatal(err)
	}
	return redated(t, b, time.Now())
}

// examplesWritten is when the examples' profile events say they were
// observed (the left one the day before, the back one that day).
var examplesWritten = time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)

// redated moves an example's observedAt as far as now is from
// examplesWritten, as the README's commands do, so that the examples stay
// inside the profile age limit whenever they run; bodies without it are
// returned as they are.
func redated(t *testing.T, body []byte, now time.Time) []byte {
	t.Helper()
	var ev map[string]any
	if json.Unmarshal(body, &ev) != nil {
		return body
	}
	s, ok := ev["observedAt"].(string)
	if !ok {
		return body
	}
	at, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatalf("observedAt %q: %v", s, err)
	}
	ev["observedAt"] = at.Add(now.Sub(examplesWritten)).UTC().Format(time.RFC3339)
	out, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// The examples flag years from now as well: redated to 2030, the left
// profile is still one day old.
func TestExamplesRedate(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(filepath.Join("..", "..", "scripts", "examples", "profile-left.json"))
	if err != nil {
		t.Fatal(err)
	}
	later := time.Date(2030, 6, 1, 0, 0, 0, 0, time.UTC)
	var ev struct{ ObservedAt time.Time }
	if err := json.Unmarshal(redated(t, b, later), &ev); err != nil {
		t.Fatal(err)
	}
	if age := later.Sub(ev.ObservedAt); age <= 0 || age > 48*time.Hour {
		t.Errorf("redated observedAt %s is %s before %s, want within two days", ev.ObservedAt, age, later)
	}
}

func post(t *testing.T, url string, body []byte, header map[string]string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func admin(t *testing.T, method, url, token string) int {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func sign(secret string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return hex.EncodeToString(mac.Sum(nil))
}

// flag reads the contact's flag back from the stand-in over HTTP, the way a
// person would with curl.
func flag(t *testing.T, stack *devstack.Stack) float64 {
	t.Helper()
	resp, err := http.Get(stack.StandinURL + "/api/data/v9.2/contacts(" + devstack.DemoContactID + ")?$select=nac_orgchangestatus")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var row map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&row); err != nil {
		t.Fatal(err)
	}
	v, _ := row["nac_orgchangestatus"].(float64)
	return v
}

// TestEndToEnd walks the README's path through the real HTTP endpoint,
// embedded JetStream, the validator, the writer and the stand-in.
func TestEndToEnd(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	stack, stop := startStack(t, dir)
	key, secret := stack.Secrets.WebhookKey, stack.Secrets.ProfileSecret
	dvURL := stack.HTTPURL + "/webhooks/dataverse?code=" + key

	// Refused input changes nothing.
	if code, _ := post(t, stack.HTTPURL+"/webhooks/dataverse?code=wrong-key-123456", example(t, "dataverse-contact-update.json"), nil); code != http.StatusUnauthorized {
		t.Fatalf("wrong key: status %d, want 401", code)
	}
	if code, body := post(t, dvURL, []byte("{not json"), nil); code != http.StatusBadRequest || !bytes.Contains(body, []byte(`"status":400`)) {
		t.Fatalf("broken body: status %d %s, want 400 problem", code, body)
	}

	for _, name := range []string{"dataverse-contact-update.json", "dataverse-account-update.json"} {
		if code, body := post(t, dvURL, example(t, name), nil); code != http.StatusAccepted {
			t.Fatalf("%s: status %d %s", name, code, body)
		}
	}
	idle(t, stack) // the changes decided before the profile comes
	left := example(t, "profile-left.json")
	if code, body := post(t, stack.HTTPURL+"/webhooks/profile", left, map[string]string{"X-LI-Signature": sign(secret, left)}); code != http.StatusAccepted {
		t.Fatalf("profile-left: status %d %s", code, body)
	}
	start := time.Now()
	testkit.Eventually(t, "flag set to 1", 5*time.Second, func() bool { return flag(t, stack) == 1 })
	t.Logf("flag set %s after the profile event", time.Since(start).Round(time.Millisecond))
	// Write-through: the stand-in's answer means the row is on disk, with
	// no clean stop needed (a kill -9 keeps it).
	onDisk, err := dataversetest.ReadJournal(filepath.Join(dir, "dataverse-standin.journal"))
	if err != nil {
		t.Fatal(err)
	}
	if got := onDisk.Rows["contacts"][devstack.DemoContactID]["nac_orgchangestatus"]; got != float64(1) {
		t.Fatalf("flag in the stand-in's journal = %v while the stack runs, want 1", got)
	}

	// Scope: without its sync user the contact is out of scope and the flag
	// does not outlive it; with the sync user back, it is flagged again.
	syncUser := stack.HTTPURL + "/admin/orgs/" + devstack.DemoOrganizationID + "/sync-users/" + devstack.DemoSyncUserID
	if code := admin(t, http.MethodDelete, syncUser, stack.Secrets.AdminToken); code != http.StatusAccepted {
		t.Fatalf("remove sync user: status %d", code)
	}
	testkit.Eventually(t, "flag cleared when out of scope", 5*time.Second, func() bool { return flag(t, stack) == 0 })
	if code := admin(t, http.MethodPut, syncUser, "wrong-token-0123456789"); code != http.StatusUnauthorized {
		t.Fatalf("admin with a wrong token: status %d, want 401", code)
	}
	if code := admin(t, http.MethodPut, syncUser, stack.Secrets.AdminToken); code != http.StatusAccepted {
		t.Fatalf("add sync user: status %d", code)
	}
	testkit.Eventually(t, "flag set again in scope", 5*time.Second, func() bool { return flag(t, stack) == 1 })

	back := example(t, "profile-back.json")
	if code, body := post(t, stack.HTTPURL+"/webhooks/profile", back, map[string]string{"X-LI-Signature": "hmacsha256=" + sign(secret, back)}); code != http.StatusAccepted {
		t.Fatalf("profile-back: status %d %s", code, body)
	}
	testkit.Eventually(t, "flag cleared to 0", 5*time.Second, func() bool { return flag(t, stack) == 0 })

	// Replaying the older "left" event must not move the state backwards.
	idle(t, stack) // every write of the steps before is done
	if code, _ := post(t, stack.HTTPURL+"/webhooks/profile", left, map[string]string{"X-LI-Signature": sign(secret, left)}); code != http.StatusAccepted {
		t.Fatalf("replay: status %d", code)
	}
	patches := stack.Standin.Patches()
	time.Sleep(500 * time.Millisecond)
	if got := flag(t, stack); got != 0 {
		t.Fatalf("after replaying an older event the flag is %v, want 0", got)
	}
	if got := stack.Standin.Patches(); got != patches {
		t.Fatalf("replaying an older event caused %d writes", got-patches)
	}

	if err := stop(); err != nil {
		t.Fatalf("shutdown: %v", err)
	}

	// A second start finds its state again: same keys, same stand-in rows.
	again, stop2 := startStack(t, dir)
	if again.Secrets != stack.Secrets {
		t.Fatal("secrets changed across restarts")
	}
	if got := flag(t, again); got != 0 {
		t.Fatalf("flag after restart = %v", got)
	}
	if err := stop2(); err != nil {
		t.Fatalf("second shutdown: %v", err)
	}
}
