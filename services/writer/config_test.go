package writer

import (
	"io"
	"strconv"
	"strings"
	"testing"
	"time"
)

func getenv(env map[string]string) func(string) string {
	return func(k string) string { return env[k] }
}

func TestParseConfigDefaults(t *testing.T) {
	t.Parallel()
	cfg, err := ParseConfig(nil, getenv(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.BatchSize != 10 || cfg.Budget != (Budget{Requests: 6000, ExecutionTime: 20 * time.Minute, Window: 5 * time.Minute, Concurrent: 52}) {
		t.Errorf("batch size %d, budget %+v; want 10 and Dataverse's 6000 requests and 20m of execution per 5m, 52 at once", cfg.BatchSize, cfg.Budget)
	}
	if !cfg.Default.DryRun() || len(cfg.Targets) != 0 {
		t.Errorf("default %+v, targets %+v; want a dry run and none", cfg.Default, cfg.Targets)
	}
	if cfg.FlagColumn != "nac_orgchangestatus" || cfg.WriteTag != "notatcompany" || cfg.Linger != 20*time.Millisecond ||
		cfg.Workers != 4 || cfg.RequestTimeout != 15*time.Second || cfg.HandleTimeout != 25*time.Second {
		t.Errorf("defaults = %+v", cfg)
	}
	// The defaults keep a batch inside the ack wait.
	if cfg.HandleTimeout >= 30*time.Second || cfg.HandleTimeout <= cfg.RequestTimeout {
		t.Errorf("handle timeout %s", cfg.HandleTimeout)
	}
}

func TestParseConfigTargets(t *testing.T) {
	t.Parallel()
	doc := `[
		{"organizationId": "5F0C7F10-0000-4000-8000-00000000000A", "url": "https://a.crm.dynamics.com",
		 "tokenUrl": "https://login/a/token", "clientId": "id-a", "clientSecret": "secret-a", "scope": "https://a.crm.dynamics.com/.default"},
		{"organizationId": "` + orgB + `", "disabled": true}
	]`
	cfg, err := ParseConfig(nil, getenv(map[string]string{"NAC_DATAVERSE_TARGETS": doc}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := []TargetConfig{
		{OrganizationID: orgA, URL: "https://a.crm.dynamics.com", TokenURL: "https://login/a/token",
			ClientID: "id-a", ClientSecret: "secret-a", Scope: "https://a.crm.dynamics.com/.default"},
		{OrganizationID: orgB, Disabled: true},
	}
	if len(cfg.Targets) != 2 || cfg.Targets[0] != want[0] || cfg.Targets[1] != want[1] {
		t.Errorf("targets = %+v, want %+v", cfg.Targets, want)
	}
	if cfg.Targets[0].DryRun() || !cfg.Targets[1].DryRun() {
		t.Error("DryRun wrong")
	}
	if c := cfg.Targets[0].credentials(); c.ClientID != "id-a" || c.ClientSecret != "secret-a" || c.TokenURL != "https://login/a/token" || c.Scope == "" {
		t.Errorf("credentials = %+v", c)
	}
}

func TestParseTargets(t *testing.T) {
	t.Parallel()
	if ts, err := ParseTargets("  "); err != nil || ts != nil {
		t.Errorf("empty = %v %v", ts, err)
	}
	for name, tc := range map[string]struct{ doc, want string }{
		"duplicate":      {`[{"organizationId":"org-1"},{"organizationId":"ORG-1"}]`, `NAC_DATAVERSE_TARGETS[1].organizationId "org-1": missing or listed twice`},
		"missing org":    {`[{"organizationId":"org-1"},{"url":"https://b.crm.dynamics.com"}]`, `NAC_DATAVERSE_TARGETS[1].organizationId "": missing`},
		"unknown field":  {`[{"organizationId":"org-1","secret":"x"}]`, `unknown field "secret"`},
		"not an array":   {`{"organizationId":"org-1"}`, "not a JSON array"},
		"not JSON":       {`[{"organizationId":`, "not a JSON array"},
		"wrong type":     {`[{"organizationId":"org-1","disabled":"yes"}]`, "not a JSON array"},
		"trailing comma": {`[{"organizationId":"org-1"},]`, "not a JSON array"},
	} {
		t.Run(name, func(t *testing.T) {
			ts, err := ParseTargets(tc.doc)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("ParseTargets = %+v, %v; want an error with %q", ts, err, tc.want)
			}
		})
	}
}

func TestParseConfigProblems(t *testing.T) {
	t.Parallel()
	full := map[string]string{
		"NAC_DATAVERSE_URL": "https://org.crm.dynamics.com", "NAC_DATAVERSE_TOKEN_URL": "https://login/token",
		"NAC_DATAVERSE_CLIENT_ID": "id", "NAC_DATAVERSE_CLIENT_SECRET": "s3cret",
	}
	with := func(kv ...string) map[string]string {
		env := map[string]string{}
		for k, v := range full {
			env[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			env[kv[i]] = kv[i+1]
		}
		return env
	}
	cfg, err := ParseConfig(nil, getenv(full), io.Discard)
	if err != nil || cfg.Default.DryRun() || cfg.Default.ClientSecret != "s3cret" {
		t.Fatalf("full configuration: %+v %v", cfg.Default, err)
	}
	for name, tc := range map[string]struct {
		env     map[string]string
		want    []string
		notWant []string
	}{
		"target without client id": {
			env:  with("NAC_DATAVERSE_TARGETS", `[{"organizationId":"`+orgB+`","url":"https://b.crm.dynamics.com","tokenUrl":"https://login/b","clientSecret":"s"}]`),
			want: []string{"NAC_DATAVERSE_TARGETS[0].clientId"}, notWant: []string{"NAC_DATAVERSE_TARGETS[0].clientSecret", "NAC_DATAVERSE_CLIENT_ID"},
		},
		"second target without secret": {
			env:  with("NAC_DATAVERSE_TARGETS", `[{"organizationId":"`+orgB+`"},{"organizationId":"`+orgC+`","url":"https://c.crm.dynamics.com","tokenUrl":"https://login/c","clientId":"c"}]`),
			want: []string{"NAC_DATAVERSE_TARGETS[1].clientSecret"}, notWant: []string{"TARGETS[0]", "TARGETS[1].clientId"},
		},
		"target with a bad url": {
			env:  with("NAC_DATAVERSE_TARGETS", `[{"organizationId":"`+orgB+`","url":"b.crm.dynamics.com","tokenUrl":"https://login/b","clientId":"b","clientSecret":"s"}]`),
			want: []string{"NAC_DATAVERSE_TARGETS[0].url"},
		},
		"duplicate target": {
			env:  with("NAC_DATAVERSE_TARGETS", `[{"organizationId":"`+orgB+`"},{"organizationId":"`+strings.ToUpper(orgB)+`"}]`),
			want: []string{"listed twice"},
		},
		"default without credentials": {
			env:  map[string]string{"NAC_DATAVERSE_URL": "https://org.crm.dynamics.com"},
			want: []string{"NAC_DATAVERSE_TOKEN_URL", "NAC_DATAVERSE_CLIENT_ID", "NAC_DATAVERSE_CLIENT_SECRET"},
		},
		"batch size 0":    {env: with("NAC_BATCH_SIZE", "0"), want: []string{"NAC_BATCH_SIZE=0"}},
		"batch size 1001": {env: with("NAC_BATCH_SIZE", "1001"), want: []string{"NAC_BATCH_SIZE=1001"}},
		"no requests":     {env: with("NAC_BUDGET_REQUESTS", "0"), want: []string{"NAC_BUDGET_REQUESTS=0"}},
		"no execution time": {
			env: with("NAC_BUDGET_EXECUTION_TIME", "0s", "NAC_BUDGET_CONCURRENT", "0"), want: []string{"NAC_BUDGET_EXECUTION_TIME=0s", "NAC_BUDGET_CONCURRENT=0"},
		},
		"short window":                     {env: with("NAC_BUDGET_WINDOW", "500ms"), want: []string{"NAC_BUDGET_WINDOW=500ms"}},
		"handle timeout over the ack wait": {env: with("NAC_HANDLE_TIMEOUT", "30s"), want: []string{"NAC_HANDLE_TIMEOUT"}},
		"bad column":                       {env: with("NAC_FLAG_COLUMN", "Not A Column"), want: []string{"NAC_FLAG_COLUMN"}},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ParseConfig(nil, getenv(tc.env), io.Discard)
			if err == nil {
				t.Fatalf("ParseConfig accepted %v", tc.env)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not name %s", err, w)
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(err.Error(), w) {
					t.Errorf("error %q names %s", err, w)
				}
			}
			for _, secret := range []string{"s3cret"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error %q shows a secret", err)
				}
			}
		})
	}
	// The edges of the batch size are accepted.
	for _, size := range []int{1, 1000} {
		cfg, err := ParseConfig(nil, getenv(with("NAC_BATCH_SIZE", strconv.Itoa(size))), io.Discard)
		if err != nil || cfg.BatchSize != size {
			t.Errorf("NAC_BATCH_SIZE=%d: %v", size, err)
		}
	}
	// A disabled or dry-run target needs no credentials.
	cfg, err = ParseConfig(nil, getenv(with("NAC_DATAVERSE_TARGETS", `[{"organizationId":"`+orgB+`","url":"https://b.crm.dynamics.com","disabled":true},{"organizationId":"`+orgC+`"}]`)), io.Discard)
	if err != nil || len(cfg.Targets) != 2 {
		t.Errorf("disabled and dry-run targets: %+v %v", cfg.Targets, err)
	}
	// The budget checks are off with the budget.
	if _, err := ParseConfig(nil, getenv(with("NAC_BUDGET_OFF", "true", "NAC_BUDGET_REQUESTS", "0")), io.Discard); err != nil {
		t.Errorf("budget off: %v", err)
	}
}
