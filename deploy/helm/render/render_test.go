package main

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/yaml"
)

const chartDir = "../detour"

var repoRoot = filepath.Join("..", "..", "..")

// objects is a rendering split into documents, by "Kind/name".
type objects map[string][]byte

func parse(t *testing.T, rendered []byte) objects {
	t.Helper()
	objs := objects{}
	// Each document starts with "---\n" and ends with its own newline.
	for _, doc := range bytes.Split(append([]byte("\n"), rendered...), []byte("\n---\n")) {
		doc = append(doc, '\n')
		var head struct {
			Kind     string
			Metadata struct{ Name string }
		}
		if err := yaml.Unmarshal(doc, &head); err != nil {
			t.Fatalf("a rendered document is not YAML: %v\n%s", err, doc)
		}
		if head.Kind == "" {
			continue // the header
		}
		key := head.Kind + "/" + head.Metadata.Name
		if _, dup := objs[key]; dup {
			t.Fatalf("%s rendered twice", key)
		}
		objs[key] = doc
	}
	return objs
}

func (o objects) get(t *testing.T, key string, into any) {
	t.Helper()
	doc, ok := o[key]
	if !ok {
		t.Fatalf("no %s in the rendering; have %v", key, o.keys())
	}
	if err := yaml.UnmarshalStrict(doc, into); err != nil {
		t.Fatalf("%s: %v", key, err)
	}
}

func (o objects) keys() []string {
	var k []string
	for key := range o {
		k = append(k, key)
	}
	slices.Sort(k)
	return k
}

func render(t *testing.T, o Options) objects {
	t.Helper()
	out, err := Render(o)
	if err != nil {
		t.Fatal(err)
	}
	return parse(t, out)
}

func withSet(set ...string) Options {
	return Options{Chart: chartDir, Release: "detour", Namespace: "detour-system", Set: set}
}

func TestDetourYAMLIsTheChartRendered(t *testing.T) {
	want, err := Render(DetourYAML(chartDir))
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(repoRoot, "deploy", "detour.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		gl, wl := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
		for i := range max(len(gl), len(wl)) {
			var g, w string
			if i < len(gl) {
				g = gl[i]
			}
			if i < len(wl) {
				w = wl[i]
			}
			if g != w {
				t.Fatalf("deploy/detour.yaml differs from the chart's rendering from line %d:\n  file:  %q\n  chart: %q\nrun hack/gen-deploy.sh", i+1, g, w)
			}
		}
	}
}

// The chart with no values at all is deploy/detour.yaml less its Namespace object.
func TestDefaultRenderingIsDetourYAMLWithoutTheNamespace(t *testing.T) {
	def := render(t, withSet())
	full := render(t, DetourYAML(chartDir))
	if _, ok := full["Namespace/detour-system"]; !ok {
		t.Fatal("deploy/detour.yaml's rendering has no Namespace")
	}
	delete(full, "Namespace/detour-system")
	if !slices.Equal(def.keys(), full.keys()) {
		t.Fatalf("objects differ:\ndefault:     %v\ndetour.yaml: %v", def.keys(), full.keys())
	}
	for k := range def {
		if !bytes.Equal(def[k], full[k]) {
			t.Errorf("%s differs between the default rendering and deploy/detour.yaml", k)
		}
	}
}

func TestConfigMapHoldsTheEmbeddedDefaultConfig(t *testing.T) {
	want, err := os.ReadFile(filepath.Join(repoRoot, "internal", "config", "default.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var cm corev1.ConfigMap
	render(t, withSet()).get(t, "ConfigMap/detour", &cm)
	if got := cm.Data["config.yaml"]; got != string(want) {
		t.Errorf("config.yaml:\n%s\nwant internal/config/default.yaml:\n%s", got, want)
	}
}

func TestPresetsReplaceOnlyThePresetsLine(t *testing.T) {
	var def, cm corev1.ConfigMap
	render(t, withSet()).get(t, "ConfigMap/detour", &def)
	render(t, withSet("presets={aliyun,nwcd}")).get(t, "ConfigMap/detour", &cm)
	got, want := strings.Split(cm.Data["config.yaml"], "\n"), strings.Split(def.Data["config.yaml"], "\n")
	if len(got) != len(want) {
		t.Fatalf("line count %d, want %d:\n%s", len(got), len(want), cm.Data["config.yaml"])
	}
	changed := 0
	for i := range got {
		if got[i] != want[i] {
			changed++
			if got[i] != `presets: ["aliyun","nwcd"]` {
				t.Errorf("line %d = %q, want the new presets line", i+1, got[i])
			}
		}
	}
	if changed != 1 {
		t.Errorf("%d lines changed, want 1", changed)
	}
	// A config without a presets line gets one.
	render(t, withSet("config=enabled: true", "presets={aliyun}")).get(t, "ConfigMap/detour", &cm)
	if cm.Data["config.yaml"] != "enabled: true\npresets: [\"aliyun\"]\n" {
		t.Errorf("config.yaml = %q", cm.Data["config.yaml"])
	}
}

// consistent checks that the names the Deployment's arguments use are the objects the chart
// makes and the ones its RBAC allows: a rename in one template but not another fails here.
func consistent(t *testing.T, o objects, name, namespace string, self bool) {
	t.Helper()
	var dep appsv1.Deployment
	o.get(t, "Deployment/"+name, &dep)
	args := dep.Spec.Template.Spec.Containers[0].Args
	arg := func(flag string) string {
		i := slices.Index(args, flag)
		if i < 0 || i+1 >= len(args) {
			return ""
		}
		return args[i+1]
	}
	var role rbacv1.Role
	o.get(t, "Role/"+name, &role)
	allowed := func(resource, object, verb string) bool {
		for _, r := range role.Rules {
			if slices.Contains(r.Resources, resource) && slices.Contains(r.Verbs, verb) && (len(r.ResourceNames) == 0 || slices.Contains(r.ResourceNames, object)) {
				return true
			}
		}
		return false
	}
	if got := arg("--configmap"); got != namespace+"/"+name {
		t.Errorf("--configmap %q, want %s/%s", got, namespace, name)
	}
	for _, verb := range []string{"get", "list", "watch"} {
		if !allowed("configmaps", name, verb) {
			t.Errorf("the Role does not allow %s on ConfigMap %s", verb, name)
		}
	}
	if _, ok := o["ConfigMap/"+name]; !ok {
		t.Errorf("no ConfigMap %s", name)
	}

	var hook admissionregistrationv1.MutatingWebhookConfiguration
	o.get(t, "MutatingWebhookConfiguration/"+name, &hook)
	var svc corev1.Service
	o.get(t, "Service/"+name, &svc)
	ref := hook.Webhooks[0].ClientConfig.Service
	if ref == nil || ref.Name != svc.Name || ref.Namespace != namespace || svc.Namespace != namespace {
		t.Errorf("the webhook calls Service %+v, the chart makes %s/%s", ref, svc.Namespace, svc.Name)
	}
	for k, v := range svc.Spec.Selector {
		if dep.Spec.Template.Labels[k] != v {
			t.Errorf("the Service selects %s=%s, the Pods are labelled %q", k, v, dep.Spec.Template.Labels[k])
		}
	}

	if self {
		secret := arg("--cert-secret")
		if secret == "" || !allowed("secrets", secret, "get") || !allowed("secrets", secret, "update") || !allowed("secrets", "", "create") {
			t.Errorf("--cert-secret %q: the Role does not allow get, update and create on it", secret)
		}
		if allowed("secrets", "other", "get") {
			t.Error("the Role allows reading other Secrets")
		}
		if got := arg("--webhook-config-name"); got != hook.Name {
			t.Errorf("--webhook-config-name %q, the webhook configuration is %q", got, hook.Name)
		}
		var cr rbacv1.ClusterRole
		o.get(t, "ClusterRole/"+name, &cr)
		if len(cr.Rules) != 1 || !slices.Equal(cr.Rules[0].ResourceNames, []string{hook.Name}) || !slices.Equal(cr.Rules[0].Verbs, []string{"get", "patch"}) {
			t.Errorf("ClusterRole rules %+v, want get and patch on %s only", cr.Rules, hook.Name)
		}
		if want := "detour"; name != want && arg("--service-name") != svc.Name {
			t.Errorf("--service-name %q, the Service is %q", arg("--service-name"), svc.Name)
		}
	}
}

func TestNamesAgreeAcrossTemplates(t *testing.T) {
	consistent(t, render(t, withSet()), "detour", "detour-system", true)
	consistent(t, render(t, Options{Chart: chartDir, Release: "mirrors", Namespace: "infra"}), "mirrors-detour", "infra", true)
	consistent(t, render(t, withSet("certs.mode=cert-manager")), "detour", "detour-system", false)
}

func TestCertManagerModeHandsCertificatesToCertManager(t *testing.T) {
	o := render(t, withSet("certs.mode=cert-manager"))
	for _, k := range []string{"Issuer/detour-selfsigned", "Certificate/detour-ca", "Issuer/detour-ca", "Certificate/detour-tls"} {
		if _, ok := o[k]; !ok {
			t.Errorf("no %s", k)
		}
	}
	if _, ok := o["ClusterRole/detour"]; ok {
		t.Error("a ClusterRole is rendered although detour has no caBundle to patch")
	}
	var hook admissionregistrationv1.MutatingWebhookConfiguration
	o.get(t, "MutatingWebhookConfiguration/detour", &hook)
	if got := hook.Annotations["cert-manager.io/inject-ca-from"]; got != "detour-system/detour-tls" {
		t.Errorf("inject-ca-from = %q", got)
	}
	var role rbacv1.Role
	o.get(t, "Role/detour", &role)
	for _, r := range role.Rules {
		if slices.Contains(r.Resources, "secrets") {
			t.Errorf("the Role grants %v on Secrets", r.Verbs)
		}
	}
	var dep appsv1.Deployment
	o.get(t, "Deployment/detour", &dep)
	args := strings.Join(dep.Spec.Template.Spec.Containers[0].Args, " ")
	if !strings.Contains(args, "--tls-cert /etc/detour/tls/tls.crt --tls-key /etc/detour/tls/tls.key") || strings.Contains(args, "--cert-secret") {
		t.Errorf("args %q", args)
	}
	vols := dep.Spec.Template.Spec.Volumes
	if len(vols) != 1 || vols[0].Secret == nil || vols[0].Secret.SecretName != "detour-tls" {
		t.Errorf("volumes %+v, want the Secret detour-tls", vols)
	}
	var cert struct {
		Spec struct {
			DNSNames   []string `json:"dnsNames"`
			SecretName string   `json:"secretName"`
		}
	}
	if err := yaml.Unmarshal(o["Certificate/detour-tls"], &cert); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(cert.Spec.DNSNames, "detour.detour-system.svc") || cert.Spec.SecretName != "detour-tls" {
		t.Errorf("serving Certificate %+v", cert.Spec)
	}
}

func TestWebhookValues(t *testing.T) {
	var hook admissionregistrationv1.MutatingWebhookConfiguration
	render(t, withSet("webhook.failurePolicy=Fail", "webhook.timeoutSeconds=10",
		"webhook.namespaceSelector.matchLabels.detour=on")).get(t, "MutatingWebhookConfiguration/detour", &hook)
	w := hook.Webhooks[0]
	if *w.FailurePolicy != admissionregistrationv1.Fail || *w.TimeoutSeconds != 10 || w.NamespaceSelector.MatchLabels["detour"] != "on" || len(w.NamespaceSelector.MatchExpressions) != 0 {
		t.Errorf("failurePolicy %s, timeoutSeconds %d, namespaceSelector %+v", *w.FailurePolicy, *w.TimeoutSeconds, w.NamespaceSelector)
	}

	render(t, withSet()).get(t, "MutatingWebhookConfiguration/detour", &hook)
	w = hook.Webhooks[0]
	if *w.FailurePolicy != admissionregistrationv1.Ignore || *w.SideEffects != admissionregistrationv1.SideEffectClassNone ||
		*w.ReinvocationPolicy != admissionregistrationv1.IfNeededReinvocationPolicy || *w.MatchPolicy != admissionregistrationv1.Equivalent ||
		len(w.ClientConfig.CABundle) != 0 || !slices.Equal(w.AdmissionReviewVersions, []string{"v1", "v1beta1"}) {
		t.Errorf("default webhook %+v", w)
	}
	sel := w.NamespaceSelector.MatchExpressions
	if len(sel) != 1 || sel[0].Key != "kubernetes.io/metadata.name" || sel[0].Operator != "NotIn" || !slices.Equal(sel[0].Values, []string{"detour-system", "kube-system"}) {
		t.Errorf("default namespaceSelector %+v", sel)
	}

	for _, bad := range []string{"webhook.failurePolicy=Deny", "webhook.timeoutSeconds=31", "webhook.timeoutSeconds=0", "certs.mode=vault"} {
		if _, err := Render(withSet(bad)); err == nil {
			t.Errorf("--set %s rendered without error", bad)
		}
	}
}

func TestOneReplicaHasNoDisruptionBudget(t *testing.T) {
	o := render(t, withSet("replicas=1"))
	if _, ok := o["PodDisruptionBudget/detour"]; ok {
		t.Error("a PodDisruptionBudget with minAvailable 1 and one replica would block every node drain")
	}
	if _, ok := render(t, withSet())["PodDisruptionBudget/detour"]; !ok {
		t.Error("no PodDisruptionBudget with two replicas")
	}
}
