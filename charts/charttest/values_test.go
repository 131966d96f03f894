package charttest

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// Bad values fail the render with a message naming the value (the schema
// names it as a JSON pointer, '/ingest/replicas').
func TestBadValues(t *testing.T) {
	c := load(t)
	for _, tc := range []struct {
		name   string
		values string
		want   []string
	}{
		{"negative replicas", `ingest: {replicas: -1}`, []string{"'/ingest/replicas'", "minimum"}},
		{"replicas not a number", `writer: {replicas: two}`, []string{"'/writer/replicas'", "integer"}},
		{"two stream replicas", `nats: {streamReplicas: 2}`, []string{"'/nats/streamReplicas'", "1, 3, 5"}},
		{"misspelt key", `ingest: {replica: 3}`, []string{"ingest", "replica"}},
		{"unknown top-level key", `ingres: {enabled: true}`, []string{"ingres"}},
		{"unknown NATS auth", `nats: {auth: {method: password}}`, []string{"'/nats/auth/method'", "userPassword"}},
		{"NATS URL without a scheme", `nats: {url: "nats.svc:4222"}`, []string{"'/nats/url'"}},
		{"pull policy", `image: {pullPolicy: Sometimes}`, []string{"'/image/pullPolicy'"}},
		{"log level", `log: {level: verbose}`, []string{"'/log/level'"}},
		{"digest", `image: {digest: "latest"}`, []string{"'/image/digest'"}},
		{"Dataverse URL", `writer: {dataverseUrl: "contoso.crm.dynamics.com"}`, []string{"'/writer/dataverseUrl'"}},
		{"threshold", `validator: {confidenceThreshold: "1.5"}`, []string{"'/validator/confidenceThreshold'"}},
		{"evidence column", `writer: {evidence: {reasonColumn: "Reason Column"}}`, []string{"'/writer/evidence/reasonColumn'"}},
		{"sync interval", `writer: {sync: {interval: "daily"}}`, []string{"'/writer/sync/interval'"}},
		{"LinkedIn column not a logical name", `linkedinStatusColumn: "msdyn OrgChangeStatus"`, []string{"'/linkedinStatusColumn'"}},
		{"LinkedIn column is the flag column", `{flagColumn: msdyn_orgchangestatus, linkedinStatusColumn: msdyn_orgchangestatus}`, []string{"linkedinStatusColumn", "flag column itself"}},
		{"no memory limit", `writer: {resources: {limits: {memory: null}}}`, []string{"'/writer/resources/limits'", "memory"}},
		{"budget window", `writer: {budget: {window: "five minutes"}}`, []string{"'/writer/budget/window'"}},
		{"budget concurrency", `writer: {budget: {concurrent: 0}}`, []string{"'/writer/budget/concurrent'", "minimum"}},
		{"secret name", `existingSecret: "Not_A_Name"`, []string{"existingSecret"}},
		{"ingress without host", `ingress: {enabled: true}`, []string{"ingress.host is required"}},
		{"no Dataverse key", `ingest: {secrets: {dataverseWebhookKey: false}}`, []string{"dataverseWebhookKey or dataverseOrgs"}},
		{"no profile key", `ingest: {secrets: {profileSecret: false}}`, []string{"profileSecret or profileSources"}},
		{"autoscaling upside down", `validator: {autoscaling: {enabled: true, minReplicas: 5, maxReplicas: 2}}`, []string{"validator.autoscaling", "minReplicas 5 is above maxReplicas 2"}},
		{"writer without client", `writer: {dataverseUrl: "https://contoso.crm.dynamics.com"}`, []string{"writer.tokenUrl and writer.clientId are required"}},
		{"provisioning without Dataverse", `provisioning: {job: {enabled: true}}`, []string{"provisioning.dataverseUrl"}},
		{"provisioning without a webhook URL", `provisioning: {dataverseUrl: "https://o.crm.dynamics.com", tokenUrl: "https://login.example/t", clientId: "c", job: {enabled: true}}`, []string{"provisioning.webhookUrl"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var v map[string]any
			if err := yaml.Unmarshal([]byte(tc.values), &v); err != nil {
				t.Fatal(err)
			}
			_, err := Render(c, Release{Name: "notatcompany", Namespace: "crm", Values: v})
			if err == nil {
				t.Fatalf("%s rendered", tc.values)
			}
			for _, want := range tc.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
		})
	}
}

// Every value of values.yaml is in the schema, described, and no property
// of the schema is left open.
func TestSchemaCoversEveryValue(t *testing.T) {
	raw, err := os.ReadFile(chartDir + "/values.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	var schema map[string]any
	if err := json.Unmarshal(raw, &schema); err != nil {
		t.Fatal(err)
	}
	vb, err := os.ReadFile(chartDir + "/values.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var values map[string]any
	if err := yaml.Unmarshal(vb, &values); err != nil {
		t.Fatal(err)
	}
	var walk func(path string, v any, s map[string]any)
	walk = func(path string, v any, s map[string]any) {
		m, ok := v.(map[string]any)
		if !ok {
			if _, ok := s["description"]; !ok {
				t.Errorf("%s: no description in the schema", path)
			}
			return
		}
		props, _ := s["properties"].(map[string]any)
		if props == nil {
			if _, open := s["additionalProperties"].(map[string]any); open {
				return // a map of strings (labels, annotations)
			}
			if path == "affinity" {
				return // a Kubernetes Affinity, passed through
			}
			t.Errorf("%s: an object without properties in the schema", path)
			return
		}
		if s["additionalProperties"] != false {
			t.Errorf("%s: the schema takes unknown keys", path)
		}
		for k, child := range m {
			p := strings.TrimPrefix(path+"."+k, ".")
			cs, ok := props[k].(map[string]any)
			if !ok {
				t.Errorf("%s: in values.yaml, not in the schema", p)
				continue
			}
			walk(p, child, cs)
		}
	}
	walk("", values, schema)
}
