// Package charttest renders the notatcompany chart in-process with Helm's
// SDK, as `helm install` would, and decodes every object strictly into its
// Kubernetes type, so that tests can assert what a cluster would be given.
package charttest

import (
	"bytes"
	"fmt"
	"regexp"
	"sort"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
)

// Release is what `helm install <Name> -n <Namespace> --set …` is given.
type Release struct {
	Name, Namespace string
	Values          map[string]any
}

// Object is one rendered manifest, decoded into its type (a pointer).
type Object struct {
	Template string
	Kind     string
	Name     string
	Obj      any
	Meta     metav1.ObjectMeta
}

// Rendered is a release's objects and its NOTES.txt.
type Rendered struct {
	Objects []Object
	Notes   string
}

// Load reads the chart at dir.
func Load(dir string) (*chart.Chart, error) { return loader.Load(dir) }

// Render renders c for rel: values are coalesced with the chart's and
// validated against values.schema.json, templates run in strict mode (a
// missing value is an error, as `helm lint --strict` has it), and every
// object is decoded strictly.
func Render(c *chart.Chart, rel Release) (Rendered, error) {
	vals, err := chartutil.ToRenderValues(c, rel.Values, chartutil.ReleaseOptions{
		Name: rel.Name, Namespace: rel.Namespace, Revision: 1, IsInstall: true,
	}, chartutil.DefaultCapabilities)
	if err != nil {
		return Rendered{}, err
	}
	files, err := engine.Engine{Strict: true}.Render(c, vals)
	if err != nil {
		return Rendered{}, err
	}
	var out Rendered
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		body := files[name]
		if strings.HasSuffix(name, "NOTES.txt") {
			out.Notes = body
			continue
		}
		for i, doc := range splitDocs(body) {
			o, err := decode(doc)
			if err != nil {
				return out, fmt.Errorf("%s, document %d: %w\n%s", name, i+1, err, doc)
			}
			o.Template = name
			out.Objects = append(out.Objects, o)
		}
	}
	return out, nil
}

var docSep = regexp.MustCompile(`(?m)^---\s*$`)

// splitDocs returns the YAML documents of body that hold something.
func splitDocs(body string) []string {
	var docs []string
	for _, d := range docSep.Split(body, -1) {
		empty := true
		for _, line := range strings.Split(d, "\n") {
			if t := strings.TrimSpace(line); t != "" && !strings.HasPrefix(t, "#") {
				empty = false
				break
			}
		}
		if !empty {
			docs = append(docs, d)
		}
	}
	return docs
}

// newObject returns an empty object of the type apiVersion and kind name.
func newObject(apiVersion, kind string) (any, bool) {
	switch apiVersion + " " + kind {
	case "v1 ServiceAccount":
		return &corev1.ServiceAccount{}, true
	case "v1 Service":
		return &corev1.Service{}, true
	case "v1 ConfigMap":
		return &corev1.ConfigMap{}, true
	case "apps/v1 Deployment":
		return &appsv1.Deployment{}, true
	case "policy/v1 PodDisruptionBudget":
		return &policyv1.PodDisruptionBudget{}, true
	case "autoscaling/v2 HorizontalPodAutoscaler":
		return &autoscalingv2.HorizontalPodAutoscaler{}, true
	case "networking.k8s.io/v1 Ingress":
		return &networkingv1.Ingress{}, true
	case "networking.k8s.io/v1 NetworkPolicy":
		return &networkingv1.NetworkPolicy{}, true
	case "batch/v1 Job":
		return &batchv1.Job{}, true
	case "batch/v1 CronJob":
		return &batchv1.CronJob{}, true
	case "monitoring.coreos.com/v1 ServiceMonitor":
		return &ServiceMonitor{}, true
	case "monitoring.coreos.com/v1 PrometheusRule":
		return &PrometheusRule{}, true
	}
	return nil, false
}

func decode(doc string) (Object, error) {
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal([]byte(doc), &tm); err != nil {
		return Object{}, err
	}
	obj, ok := newObject(tm.APIVersion, tm.Kind)
	if !ok {
		return Object{}, fmt.Errorf("%s %s: not a type the chart may render", tm.APIVersion, tm.Kind)
	}
	// Unknown or duplicate fields are errors: a typo is not silently dropped.
	if err := yaml.UnmarshalStrict([]byte(doc), obj); err != nil {
		return Object{}, fmt.Errorf("%s: %w", tm.Kind, err)
	}
	var meta struct {
		Metadata metav1.ObjectMeta `json:"metadata"`
	}
	if err := yaml.Unmarshal([]byte(doc), &meta); err != nil {
		return Object{}, err
	}
	return Object{Kind: tm.Kind, Name: meta.Metadata.Name, Obj: obj, Meta: meta.Metadata}, nil
}

// ServiceMonitor is the part of the Prometheus operator's type the chart uses.
type ServiceMonitor struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Selector metav1.LabelSelector `json:"selector"`
		// TargetLabels are the Service's labels copied onto every target.
		TargetLabels []string `json:"targetLabels,omitempty"`
		Endpoints    []struct {
			Port     string `json:"port"`
			Path     string `json:"path"`
			Interval string `json:"interval"`
		} `json:"endpoints"`
	} `json:"spec"`
}

// PrometheusRule is the part of the Prometheus operator's type the chart uses.
type PrometheusRule struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Groups []struct {
			Name  string `json:"name"`
			Rules []struct {
				Alert       string            `json:"alert"`
				Expr        string            `json:"expr"`
				For         string            `json:"for,omitempty"`
				Labels      map[string]string `json:"labels,omitempty"`
				Annotations map[string]string `json:"annotations,omitempty"`
			} `json:"rules"`
		} `json:"groups"`
	} `json:"spec"`
}

// Pod is one pod template of the release and the object holding it.
type Pod struct {
	Owner    string // Kind/name
	Template *corev1.PodTemplateSpec
}

// Pods returns every pod template of objs.
func Pods(objs []Object) []Pod {
	var pods []Pod
	for _, o := range objs {
		owner := o.Kind + "/" + o.Name
		switch v := o.Obj.(type) {
		case *appsv1.Deployment:
			pods = append(pods, Pod{owner, &v.Spec.Template})
		case *batchv1.Job:
			pods = append(pods, Pod{owner, &v.Spec.Template})
		case *batchv1.CronJob:
			pods = append(pods, Pod{owner, &v.Spec.JobTemplate.Spec.Template})
		}
	}
	return pods
}

// Find returns the object of kind and name, or nil.
func Find(objs []Object, kind, name string) any {
	for _, o := range objs {
		if o.Kind == kind && o.Name == name {
			return o.Obj
		}
	}
	return nil
}

// Dump is the objects back in YAML, for a failing test's log.
func Dump(objs []Object) string {
	var b bytes.Buffer
	for _, o := range objs {
		y, _ := yaml.Marshal(o.Obj)
		fmt.Fprintf(&b, "--- # %s\n%s", o.Template, y)
	}
	return b.String()
}
