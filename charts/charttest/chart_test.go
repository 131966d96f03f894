package charttest

import (
	"reflect"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
)

func TestDefaults(t *testing.T) {
	c := load(t)
	r := render(t, c, Release{Name: "notatcompany"})
	want := map[string]int{"Deployment": 3, "Service": 3, "PodDisruptionBudget": 3, "ServiceAccount": 1}
	if got := kinds(r); !reflect.DeepEqual(got, want) {
		t.Errorf("kinds %v, want %v", got, want)
	}
	// The release named as the chart is not said twice.
	for _, name := range []string{"notatcompany-ingest", "notatcompany-validator", "notatcompany-writer"} {
		if Find(r.Objects, "Deployment", name) == nil || Find(r.Objects, "Service", name) == nil {
			t.Errorf("no Deployment and Service %s", name)
		}
	}
	ingest := podOf(t, r, "Deployment/notatcompany-ingest")
	if got, want := secretKeys(ingest, "notatcompany"), []string{"admin-token", "dataverse-webhook-key", "profile-secret"}; !reflect.DeepEqual(got, want) {
		t.Errorf("ingest mounts %v of the Secret, want %v", got, want)
	}
	e := env(ingest.Spec.Containers[0])
	for k, want := range map[string]string{
		"NAC_DATAVERSE_WEBHOOK_KEY_FILE": "/secrets/dataverse-webhook-key",
		"NAC_PROFILE_SECRET_FILE":        "/secrets/profile-secret",
		"NAC_ADMIN_TOKEN_FILE":           "/secrets/admin-token",
		"NAC_STREAM_REPLICAS":            "3",
	} {
		if e[k] != want {
			t.Errorf("ingest %s=%q, want %q", k, e[k], want)
		}
	}
	// The validator reads no key; the writer runs dry, without its secret.
	for _, name := range []string{"validator", "writer"} {
		pod := podOf(t, r, "Deployment/notatcompany-"+name)
		if keys := secretKeys(pod, "notatcompany"); len(keys) != 0 || len(pod.Spec.Volumes) != 0 {
			t.Errorf("%s mounts %v (volumes %v), want nothing", name, keys, pod.Spec.Volumes)
		}
	}
	// The writer fills the evidence columns provisioning creates and runs
	// the sync workers; its budget is every replica's together: Dataverse's
	// limits.
	we := env(podOf(t, r, "Deployment/notatcompany-writer").Spec.Containers[0])
	for k, want := range map[string]string{
		"NAC_EVIDENCE_OFF": "false", "NAC_REASON_COLUMN": "nac_orgchangereason", "NAC_SUGGESTED_COMPANY_COLUMN": "nac_suggestedcompany",
		"NAC_DETECTED_ON_COLUMN": "nac_orgchangedetectedon", "NAC_CONFIDENCE_COLUMN": "nac_orgchangeconfidence",
		"NAC_SYNC_OFF": "false", "NAC_SYNC_INTERVAL": "24h", "NAC_SYNC_PAGE_SIZE": "5000", "NAC_SYNC_MAX_LAG": "2000",
		"NAC_BUDGET_REQUESTS": "6000", "NAC_BUDGET_EXECUTION_TIME": "20m", "NAC_BUDGET_WINDOW": "5m", "NAC_BUDGET_CONCURRENT": "52",
	} {
		if we[k] != want {
			t.Errorf("writer %s=%q, want %q", k, we[k], want)
		}
	}
	d := Find(r.Objects, "Deployment", "notatcompany-ingest").(*appsv1.Deployment)
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 2 {
		t.Errorf("ingest replicas %v, want 2", d.Spec.Replicas)
	}
	if got := ingest.Spec.Containers[0].Image; got != "ghcr.io/notatcompany/notatcompany:"+c.Metadata.AppVersion {
		t.Errorf("image %s", got)
	}
	if n := len(ingest.Spec.TopologySpreadConstraints); n != 2 {
		t.Errorf("%d topology spread constraints, want zone and host", n)
	}
	for _, ts := range ingest.Spec.TopologySpreadConstraints {
		if ts.LabelSelector.MatchLabels["app.kubernetes.io/component"] != "ingest" || ts.WhenUnsatisfiable != corev1.ScheduleAnyway {
			t.Errorf("topology spread %+v", ts)
		}
	}
}

func TestReleaseNames(t *testing.T) {
	c := load(t)
	long := strings.Repeat("a", 53) // the longest release name Helm takes
	for _, tc := range []struct {
		release  string
		values   map[string]any
		wantName string
	}{
		{"notatcompany", nil, "notatcompany-ingest"},
		{"notatcompany-prod", nil, "notatcompany-prod-ingest"},
		{"nac", nil, "nac-notatcompany-ingest"},
		{"nac", map[string]any{"fullnameOverride": "crm-flags"}, "crm-flags-ingest"},
		{long, nil, strings.Repeat("a", 40) + "-ingest"},
	} {
		t.Run(tc.release, func(t *testing.T) {
			r := render(t, c, Release{Name: tc.release, Values: tc.values})
			if Find(r.Objects, "Deployment", tc.wantName) == nil {
				t.Errorf("no Deployment %s", tc.wantName)
			}
		})
	}
	// The longest names, with every part on, are still names a cluster takes.
	render(t, c, Release{Name: long, Values: valuesFile(t, "all-on.yaml")})
}

func TestAllOn(t *testing.T) {
	c := load(t)
	r := render(t, c, Release{Name: "nac", Values: valuesFile(t, "all-on.yaml")})
	want := map[string]int{
		"Deployment": 3, "Service": 3, "PodDisruptionBudget": 3, "ServiceAccount": 1, "NetworkPolicy": 4,
		"HorizontalPodAutoscaler": 2, "Ingress": 1, "Job": 1, "CronJob": 1,
		"ServiceMonitor": 1, "PrometheusRule": 1, "ConfigMap": 1,
	}
	if got := kinds(r); !reflect.DeepEqual(got, want) {
		t.Errorf("kinds %v, want %v", got, want)
	}
	for name, keys := range map[string][]string{
		"Deployment/nac-notatcompany-ingest": {"admin-token", "dataverse-orgs", "dataverse-webhook-key", "profile-secret", "profile-sources"},
		"Deployment/nac-notatcompany-writer": {"dataverse-client-secret", "dataverse-targets"},
		"Job/nac-notatcompany-provision":     {"dataverse-webhook-key", "provisioning-client-secret"},
		"CronJob/nac-notatcompany-check":     {"dataverse-webhook-key", "provisioning-client-secret"},
	} {
		if got := secretKeys(podOf(t, r, name), "notatcompany"); !reflect.DeepEqual(got, keys) {
			t.Errorf("%s mounts %v, want %v", name, got, keys)
		}
	}
	// NATS credentials: each service its own key, from their own Secret.
	for _, svc := range []string{"ingest", "validator", "writer"} {
		pod := podOf(t, r, "Deployment/nac-notatcompany-"+svc)
		if got := secretKeys(pod, "notatcompany-nats"); !reflect.DeepEqual(got, []string{"nats-" + svc + ".creds"}) {
			t.Errorf("%s mounts %v of notatcompany-nats", svc, got)
		}
		e := env(pod.Spec.Containers[0])
		if e["NAC_NATS_CREDS_FILE"] != "/nats-auth/nats.creds" || e["NAC_NATS_TLS_CA_FILE"] != "/nats-tls/ca/ca.crt" ||
			e["NAC_NATS_TLS_CERT_FILE"] != "/nats-tls/client/tls.crt" {
			t.Errorf("%s NATS env %v", svc, e)
		}
		if got := pod.Spec.Containers[0].Image; !strings.HasSuffix(got, "@sha256:0000000000000000000000000000000000000000000000000000000000000000") {
			t.Errorf("%s image %s, want pinned by digest", svc, got)
		}
	}

	job := Find(r.Objects, "Job", "nac-notatcompany-provision").(*batchv1.Job)
	if job.Annotations["helm.sh/hook"] != "post-install,post-upgrade" {
		t.Errorf("provisioning Job hook %q", job.Annotations["helm.sh/hook"])
	}
	if got := job.Spec.Template.Spec.Containers[0].Command; !reflect.DeepEqual(got, []string{"/nacctl", "provision"}) {
		t.Errorf("Job command %v", got)
	}
	cron := Find(r.Objects, "CronJob", "nac-notatcompany-check").(*batchv1.CronJob)
	if got := cron.Spec.JobTemplate.Spec.Template.Spec.Containers[0].Command; !reflect.DeepEqual(got, []string{"/nacctl", "provision", "--check"}) {
		t.Errorf("CronJob command %v", got)
	}
	je := env(job.Spec.Template.Spec.Containers[0])
	if je["NAC_DATAVERSE_CLIENT_ID"] != "22222222-2222-2222-2222-222222222222" || je["NAC_DATAVERSE_CLIENT_SECRET_FILE"] != "/secrets/provisioning-client-secret" {
		t.Errorf("provisioning env %v: want the provisioning user, not the writer's", je)
	}
	// nacctl refuses to start without the URL Dynamics is to post to.
	if je["NAC_PROVISION_WEBHOOK_URL"] != "https://nac.example.com/webhooks/dataverse" {
		t.Errorf("provisioning NAC_PROVISION_WEBHOOK_URL = %q, want the Ingress host's webhook URL", je["NAC_PROVISION_WEBHOOK_URL"])
	}

	ing := Find(r.Objects, "Ingress", "nac-notatcompany-ingest").(*networkingv1.Ingress)
	if *ing.Spec.IngressClassName != "nginx" || ing.Spec.TLS[0].SecretName != "nac-example-com-tls" || ing.Spec.TLS[0].Hosts[0] != "nac.example.com" {
		t.Errorf("ingress %+v", ing.Spec)
	}
	if got := ingressPaths(ing); !reflect.DeepEqual(got, []string{"/webhooks", "/admin"}) {
		t.Errorf("ingress paths %v", got)
	}
	if !strings.Contains(r.Notes, "https://nac.example.com/webhooks/dataverse") {
		t.Errorf("NOTES without the webhook URL:\n%s", r.Notes)
	}
}

func ingressPaths(ing *networkingv1.Ingress) []string {
	var paths []string
	for _, rule := range ing.Spec.Rules {
		for _, p := range rule.HTTP.Paths {
			if p.Backend.Service.Port.Name != "http" {
				paths = append(paths, "port "+p.Backend.Service.Port.Name)
			}
			paths = append(paths, p.Path)
		}
	}
	return paths
}

// The ingress routes the public webhook path only, unless the admin API is
// asked for; the ops port is never routed.
func TestIngressWebhooksOnly(t *testing.T) {
	r := render(t, load(t), Release{Name: "notatcompany", Values: map[string]any{
		"ingress": map[string]any{"enabled": true, "host": "nac.example.com"},
	}})
	ing := Find(r.Objects, "Ingress", "notatcompany-ingest").(*networkingv1.Ingress)
	if got := ingressPaths(ing); !reflect.DeepEqual(got, []string{"/webhooks"}) {
		t.Errorf("ingress paths %v, want /webhooks only", got)
	}
	if len(ing.Spec.TLS) != 0 || !strings.Contains(r.Notes, "WARNING: ingress.tls.secretName is empty") {
		t.Errorf("without a TLS secret: tls %v, NOTES:\n%s", ing.Spec.TLS, r.Notes)
	}
}

func TestNetworkPolicies(t *testing.T) {
	r := render(t, load(t), Release{Name: "notatcompany", Values: map[string]any{"networkPolicy": map[string]any{"enabled": true}}})
	type rules struct{ ingressPorts, egressPorts []string }
	got := map[string]rules{}
	for _, o := range r.Objects {
		np, ok := o.Obj.(*networkingv1.NetworkPolicy)
		if !ok {
			continue
		}
		if !reflect.DeepEqual(np.Spec.PolicyTypes, []networkingv1.PolicyType{"Ingress", "Egress"}) {
			t.Errorf("%s: policy types %v", o.Name, np.Spec.PolicyTypes)
		}
		var rs rules
		for _, in := range np.Spec.Ingress {
			if len(in.From) == 0 {
				t.Errorf("%s: an ingress rule open to everyone", o.Name)
			}
			for _, p := range in.Ports {
				rs.ingressPorts = append(rs.ingressPorts, p.Port.String())
			}
		}
		for _, out := range np.Spec.Egress {
			for _, p := range out.Ports {
				rs.egressPorts = append(rs.egressPorts, p.Port.String())
			}
		}
		got[o.Name] = rs
	}
	want := map[string]rules{
		"notatcompany-ingest":    {[]string{"http", "ops"}, []string{"53", "53", "4222"}},
		"notatcompany-validator": {[]string{"ops"}, []string{"53", "53", "4222"}},
		"notatcompany-writer":    {[]string{"ops"}, []string{"53", "53", "4222", "443"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("network policies %+v,\nwant %+v", got, want)
	}
}

func TestNATSAuthMethods(t *testing.T) {
	c := load(t)
	for method, want := range map[string]struct{ key, env, file string }{
		"userPassword": {"nats-%s-password", "NAC_NATS_PASSWORD_FILE", "/nats-auth/password"},
		"token":        {"nats-%s-token", "NAC_NATS_TOKEN_FILE", "/nats-auth/token"},
		"nkey":         {"nats-%s.nk", "NAC_NATS_NKEY_SEED_FILE", "/nats-auth/seed.nk"},
		"creds":        {"nats-%s.creds", "NAC_NATS_CREDS_FILE", "/nats-auth/nats.creds"},
	} {
		t.Run(method, func(t *testing.T) {
			r := render(t, c, Release{Name: "notatcompany", Values: map[string]any{
				"nats": map[string]any{"auth": map[string]any{"method": method, "existingSecret": "nac-nats"}},
			}})
			for _, svc := range []string{"ingest", "validator", "writer"} {
				pod := podOf(t, r, "Deployment/notatcompany-"+svc)
				key := strings.Replace(want.key, "%s", svc, 1)
				if got := secretKeys(pod, "nac-nats"); !reflect.DeepEqual(got, []string{key}) {
					t.Errorf("%s mounts %v of nac-nats, want only %s", svc, got, key)
				}
				e := env(pod.Spec.Containers[0])
				if e[want.env] != want.file {
					t.Errorf("%s %s=%q, want %q", svc, want.env, e[want.env], want.file)
				}
				if method == "userPassword" && e["NAC_NATS_USER"] != "nac-"+svc {
					t.Errorf("%s NAC_NATS_USER=%q", svc, e["NAC_NATS_USER"])
				}
			}
		})
	}
}

// Without the admin token, ingest is given no admin settings and needs no
// admin-token key; a trial on one NATS server is said to be one.
func TestTrialWithoutAdminAPI(t *testing.T) {
	r := render(t, load(t), Release{Name: "notatcompany", Values: map[string]any{
		"ingest":         map[string]any{"secrets": map[string]any{"adminToken": false}},
		"nats":           map[string]any{"streamReplicas": 1},
		"topologySpread": map[string]any{"enabled": false}, "podDisruptionBudget": map[string]any{"enabled": false},
		"serviceAccount": map[string]any{"create": false, "name": "crm-apps"},
	}})
	ingest := podOf(t, r, "Deployment/notatcompany-ingest")
	if got := secretKeys(ingest, "notatcompany"); !reflect.DeepEqual(got, []string{"dataverse-webhook-key", "profile-secret"}) {
		t.Errorf("ingest mounts %v", got)
	}
	e := env(ingest.Spec.Containers[0])
	if _, ok := e["NAC_ADMIN_TOKEN_FILE"]; ok {
		t.Error("NAC_ADMIN_TOKEN_FILE set without the admin token")
	}
	if e["NAC_STREAM_REPLICAS"] != "1" {
		t.Errorf("NAC_STREAM_REPLICAS=%q", e["NAC_STREAM_REPLICAS"])
	}
	if ingest.Spec.ServiceAccountName != "crm-apps" || len(ingest.Spec.TopologySpreadConstraints) != 0 {
		t.Errorf("service account %q, spread %v", ingest.Spec.ServiceAccountName, ingest.Spec.TopologySpreadConstraints)
	}
	if k := kinds(r); k["ServiceAccount"] != 0 || k["PodDisruptionBudget"] != 0 {
		t.Errorf("kinds %v", k)
	}
	for _, want := range []string{"the admin API is off", "nats.streamReplicas=1", "port-forward svc/notatcompany-ingest"} {
		if !strings.Contains(r.Notes, want) {
			t.Errorf("NOTES without %q:\n%s", want, r.Notes)
		}
	}
}

// LinkedIn's status column reaches the three that read it — the validator
// (corroboration), the writer (its sync workers' reads) and provisioning
// (the steps' attributes) — and no one when it is not set.
func TestLinkedInStatusColumn(t *testing.T) {
	c := load(t)
	provisioning := map[string]any{"dataverseUrl": "https://contoso.crm.dynamics.com", "tokenUrl": "https://login.example/t",
		"clientId": "c", "webhookUrl": "https://nac.example.com/webhooks/dataverse", "job": map[string]any{"enabled": true}}
	for _, tc := range []struct {
		name   string
		column any // nil: the default
		want   map[string]string
	}{
		{name: "default", want: map[string]string{}},
		{name: "set", column: "msdyn_orgchangestatus", want: map[string]string{
			"Deployment/notatcompany-validator": "msdyn_orgchangestatus",
			"Deployment/notatcompany-writer":    "msdyn_orgchangestatus",
			"Job/notatcompany-provision":        "msdyn_orgchangestatus",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			values := map[string]any{"provisioning": provisioning}
			if tc.column != nil {
				values["linkedinStatusColumn"] = tc.column
			}
			r := render(t, c, Release{Name: "notatcompany", Values: values})
			for _, owner := range []string{"Deployment/notatcompany-ingest", "Deployment/notatcompany-validator",
				"Deployment/notatcompany-writer", "Job/notatcompany-provision"} {
				got, ok := env(podOf(t, r, owner).Spec.Containers[0])["NAC_LINKEDIN_STATUS_COLUMN"]
				if want, wantOK := tc.want[owner]; got != want || ok != wantOK {
					t.Errorf("%s NAC_LINKEDIN_STATUS_COLUMN=%q (set %v), want %q (set %v)", owner, got, ok, want, wantOK)
				}
			}
		})
	}
}
