package charttest

import (
	"os"
	"sort"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"

	"helm.sh/helm/v3/pkg/chart"
)

const chartDir = "../notatcompany"

func load(t *testing.T) *chart.Chart {
	t.Helper()
	c, err := Load(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// valuesFile reads a values file of testdata/.
func valuesFile(t *testing.T, name string) map[string]any {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := yaml.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// render renders a release that must render, and checks what every
// release must be.
func render(t *testing.T, c *chart.Chart, rel Release) Rendered {
	t.Helper()
	if rel.Namespace == "" {
		rel.Namespace = "crm"
	}
	r, err := Render(c, rel)
	if err != nil {
		t.Fatalf("render %s: %v", rel.Name, err)
	}
	checkRelease(t, r, rel)
	if t.Failed() {
		t.Logf("rendered:\n%s", Dump(r.Objects))
	}
	return r
}

func podOf(t *testing.T, r Rendered, owner string) *corev1.PodTemplateSpec {
	t.Helper()
	for _, p := range Pods(r.Objects) {
		if p.Owner == owner {
			return p.Template
		}
	}
	t.Fatalf("no pod of %s", owner)
	return nil
}

// secretKeys are the keys of the release's Secret the pod mounts.
func secretKeys(pod *corev1.PodTemplateSpec, secret string) []string {
	var keys []string
	for _, v := range pod.Spec.Volumes {
		if v.Projected != nil {
			for _, s := range v.Projected.Sources {
				if s.Secret != nil && s.Secret.Name == secret {
					for _, it := range s.Secret.Items {
						keys = append(keys, it.Key)
					}
				}
			}
		}
		if v.Secret != nil && v.Secret.SecretName == secret {
			if len(v.Secret.Items) == 0 {
				keys = append(keys, "*")
			}
			for _, it := range v.Secret.Items {
				keys = append(keys, it.Key)
			}
		}
	}
	sort.Strings(keys)
	return keys
}

func env(c corev1.Container) map[string]string {
	m := map[string]string{}
	for _, e := range c.Env {
		m[e.Name] = e.Value
	}
	return m
}

func kinds(r Rendered) map[string]int {
	m := map[string]int{}
	for _, o := range r.Objects {
		m[o.Kind]++
	}
	return m
}

func matches(sel *metav1.LabelSelector, lbls map[string]string) bool {
	s, err := metav1.LabelSelectorAsSelector(sel)
	return err == nil && !s.Empty() && s.Matches(labels.Set(lbls))
}

// checkRelease asserts what holds of every release: names and labels a
// cluster accepts, pods that meet Pod Security "restricted" and mount
// only what they read, and references (selectors, backends, targets)
// that point at something.
func checkRelease(t *testing.T, r Rendered, rel Release) {
	t.Helper()
	seen := map[string]bool{}
	var pods []Pod
	services := map[string]*corev1.Service{}
	deployments := map[string]*appsv1.Deployment{}
	for _, o := range r.Objects {
		key := o.Kind + "/" + o.Name
		if seen[key] {
			t.Errorf("%s rendered twice", key)
		}
		seen[key] = true
		for _, msg := range validation.IsDNS1123Label(o.Name) {
			t.Errorf("%s: name: %s", key, msg)
		}
		if o.Kind == "CronJob" && len(o.Name) > 52 {
			t.Errorf("%s: a CronJob's name has at most 52 characters", key)
		}
		if o.Meta.Labels["app.kubernetes.io/instance"] != rel.Name {
			t.Errorf("%s: no app.kubernetes.io/instance=%s label", key, rel.Name)
		}
		for k, v := range o.Meta.Labels {
			for _, msg := range append(validation.IsQualifiedName(k), validation.IsValidLabelValue(v)...) {
				t.Errorf("%s: label %s=%s: %s", key, k, v, msg)
			}
		}
		switch v := o.Obj.(type) {
		case *corev1.Service:
			services[o.Name] = v
		case *appsv1.Deployment:
			deployments[o.Name] = v
			if !matches(v.Spec.Selector, v.Spec.Template.Labels) {
				t.Errorf("%s: selector does not select its own pods", key)
			}
		case *corev1.ServiceAccount:
			if v.AutomountServiceAccountToken == nil || *v.AutomountServiceAccountToken {
				t.Errorf("%s: automountServiceAccountToken must be false", key)
			}
		}
	}
	pods = Pods(r.Objects)
	selectsAPod := func(sel *metav1.LabelSelector) bool {
		for _, p := range pods {
			if matches(sel, p.Template.Labels) {
				return true
			}
		}
		return false
	}
	for _, p := range pods {
		checkPod(t, p, r)
	}
	for _, o := range r.Objects {
		key := o.Kind + "/" + o.Name
		switch v := o.Obj.(type) {
		case *corev1.Service:
			if !selectsAPod(&metav1.LabelSelector{MatchLabels: v.Spec.Selector}) {
				t.Errorf("%s selects no pod", key)
			}
		case *policyv1.PodDisruptionBudget:
			if !selectsAPod(v.Spec.Selector) {
				t.Errorf("%s selects no pod", key)
			}
		case *networkingv1.NetworkPolicy:
			if !selectsAPod(&v.Spec.PodSelector) {
				t.Errorf("%s selects no pod", key)
			}
		case *autoscalingv2.HorizontalPodAutoscaler:
			d := deployments[v.Spec.ScaleTargetRef.Name]
			if d == nil || v.Spec.ScaleTargetRef.Kind != "Deployment" {
				t.Errorf("%s scales %s/%s, which is not rendered", key, v.Spec.ScaleTargetRef.Kind, v.Spec.ScaleTargetRef.Name)
			} else if d.Spec.Replicas != nil {
				t.Errorf("%s: Deployment %s sets replicas, which fights the HPA", key, d.Name)
			}
		case *networkingv1.Ingress:
			for _, rule := range v.Spec.Rules {
				for _, path := range rule.HTTP.Paths {
					b := path.Backend.Service
					svc := services[b.Name]
					if svc == nil || !hasPort(svc, b.Port.Name) {
						t.Errorf("%s: backend %s:%s is not a rendered Service port", key, b.Name, b.Port.Name)
					}
				}
			}
		case *batchv1.Job, *batchv1.CronJob:
		}
	}
}

func hasPort(svc *corev1.Service, name string) bool {
	for _, p := range svc.Spec.Ports {
		if p.Name == name {
			return true
		}
	}
	return false
}

func checkPod(t *testing.T, p Pod, r Rendered) {
	t.Helper()
	spec := p.Template.Spec
	for _, v := range RestrictedViolations(p.Template) {
		t.Errorf("%s: Pod Security restricted: %s", p.Owner, v)
	}
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		t.Errorf("%s: automountServiceAccountToken must be false", p.Owner)
	}
	if spec.ServiceAccountName == "" {
		t.Errorf("%s: no serviceAccountName", p.Owner)
	}
	volumes := map[string]corev1.Volume{}
	for _, v := range spec.Volumes {
		volumes[v.Name] = v
	}
	for _, c := range spec.Containers {
		sc := c.SecurityContext
		if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			t.Errorf("%s/%s: the root filesystem must be read-only", p.Owner, c.Name)
		}
		if c.Resources.Limits.Memory().IsZero() {
			t.Errorf("%s/%s: no memory limit", p.Owner, c.Name)
		}
		names := map[string]bool{}
		for _, e := range c.Env {
			if names[e.Name] {
				t.Errorf("%s/%s: %s set twice", p.Owner, c.Name, e.Name)
			}
			names[e.Name] = true
		}
		mounts := map[string]string{} // mount path → volume
		for _, m := range c.VolumeMounts {
			if _, ok := volumes[m.Name]; !ok {
				t.Errorf("%s/%s: mount %s of no volume", p.Owner, c.Name, m.Name)
			}
			if m.SubPath != "" {
				t.Errorf("%s/%s: mount %s uses subPath, which a rotated Secret never reaches", p.Owner, c.Name, m.Name)
			}
			mounts[m.MountPath] = m.Name
		}
		// Every *_FILE names a file one of the pod's volumes holds.
		for _, e := range c.Env {
			if !strings.HasSuffix(e.Name, "_FILE") {
				continue
			}
			if !fileInVolumes(e.Value, mounts, volumes) {
				t.Errorf("%s/%s: %s=%s is no file of the pod's volumes", p.Owner, c.Name, e.Name, e.Value)
			}
		}
	}
	// Every volume is mounted: nothing is projected into a pod for nothing.
	for name := range volumes {
		used := false
		for _, c := range spec.Containers {
			for _, m := range c.VolumeMounts {
				used = used || m.Name == name
			}
		}
		if !used {
			t.Errorf("%s: volume %s is mounted by no container", p.Owner, name)
		}
	}
}

func fileInVolumes(path string, mounts map[string]string, volumes map[string]corev1.Volume) bool {
	for dir, vol := range mounts {
		rel, ok := strings.CutPrefix(path, dir+"/")
		if !ok {
			continue
		}
		v := volumes[vol]
		var items []corev1.KeyToPath
		switch {
		case v.Secret != nil:
			if len(v.Secret.Items) == 0 {
				return true // the whole Secret
			}
			items = v.Secret.Items
		case v.Projected != nil:
			for _, s := range v.Projected.Sources {
				if s.Secret != nil {
					items = append(items, s.Secret.Items...)
				}
			}
		}
		for _, it := range items {
			if it.Path == rel {
				return true
			}
		}
	}
	return false
}
