package hosts

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/detourhq/detour/internal/config"
	"github.com/detourhq/detour/internal/rules"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

// goldenConfigs are the configs under testdata rendered in every format.
var goldenConfigs = []string{"daocloud", "aliyun", "nwcd", "custom", "wildcard"}

// load compiles testdata/NAME.yaml and returns it with the options the CLI
// would pass.
func load(t testing.TB, name string) (*rules.Set, Options) {
	t.Helper()
	cfg, err := config.LoadFile(filepath.Join("testdata", name+".yaml"))
	if err != nil {
		t.Fatal(err)
	}
	set, err := cfg.Compile()
	if err != nil {
		t.Fatal(err)
	}
	return set, Options{Source: cfg.Source, Insecure: cfg.InsecureRegistries}
}

func render(t testing.TB, name string, f Format) Result {
	t.Helper()
	set, opts := load(t, name)
	res, err := Render(set, f, opts)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// dump is a Result as one text: every file under a header line, then the
// unexpressible rules, then the notes.
func dump(res Result) []byte {
	var b bytes.Buffer
	names := make([]string, 0, len(res.Files))
	for n := range res.Files {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		b.WriteString("# === " + n + " ===\n")
		b.Write(res.Files[n])
	}
	b.WriteString("# === unexpressible ===\n")
	for _, u := range res.Unexpressible {
		b.WriteString(describe(u.Rule) + ": " + u.Reason + "\n")
	}
	b.WriteString("# === notes ===\n")
	for _, n := range res.Notes {
		b.WriteString(n + "\n")
	}
	return b.Bytes()
}

func TestGolden(t *testing.T) {
	t.Parallel()
	for _, name := range goldenConfigs {
		for _, f := range Formats() {
			t.Run(name+"/"+string(f), func(t *testing.T) {
				t.Parallel()
				got := dump(render(t, name, f))
				path := filepath.Join("testdata", name+"."+string(f)+".golden")
				if *update {
					if err := os.WriteFile(path, got, 0o644); err != nil {
						t.Fatal(err)
					}
					return
				}
				want, err := os.ReadFile(path)
				if err != nil {
					t.Fatalf("%v (run go test -update to create it)", err)
				}
				if !bytes.Equal(got, want) {
					t.Errorf("%s differs from the output (go test -update rewrites it); got:\n%s", path, got)
				}
			})
		}
	}
}

// unexpressible returns the reasons given for the rule with from.
func unexpressible(res Result, from string) []string {
	var out []string
	for _, u := range res.Unexpressible {
		if u.Rule.From == from {
			out = append(out, u.Reason)
		}
	}
	return out
}

// hostURLs returns the host URLs of a hosts.toml, in file order, whether
// written as [host."URL"] tables or as dotted keys under [host].
func hostURLs(file []byte) []string {
	var out []string
	for _, line := range strings.Split(string(file), "\n") {
		if u, ok := strings.CutPrefix(line, `[host."`); ok {
			out = append(out, strings.TrimSuffix(u, `"]`))
		} else if u, ok := strings.CutPrefix(line, `  "`); ok && strings.HasSuffix(line, `".capabilities = ["pull", "resolve"]`) {
			out = append(out, strings.TrimSuffix(u, `".capabilities = ["pull", "resolve"]`))
		}
	}
	return out
}

func TestContainerdMirrorWithAPathIsTheAPIRoot(t *testing.T) {
	t.Parallel()
	res := render(t, "aliyun", Containerd)
	file := string(res.Files["k8s.gcr.io/hosts.toml"])
	// containerd appends /REPO/manifests/REF to the host's path; with
	// override_path the path is used as written, so k8s.gcr.io/pause is asked
	// for as /v2/google_containers/pause/manifests/REF.
	for _, want := range []string{
		`server = "https://k8s.gcr.io"`,
		`[host."https://registry.aliyuncs.com/v2/google_containers"]`,
		`  capabilities = ["pull", "resolve"]`,
		`  override_path = true`,
	} {
		if !strings.Contains(file, want+"\n") {
			t.Errorf("k8s.gcr.io/hosts.toml lacks %q:\n%s", want, file)
		}
	}
	// aliyun flattens coredns/coredns to google_containers/coredns: a
	// whole-registry file cannot say that.
	for _, from := range []string{"registry.k8s.io/coredns", "k8s.gcr.io/coredns"} {
		if r := unexpressible(res, from); len(r) != 1 || !strings.Contains(r[0], "registry.aliyuncs.com/google_containers/coredns/...") {
			t.Errorf("%s: reasons %q, want one naming where its images go instead", from, r)
		}
	}
}

func TestContainerdChainOrderSchemesAndServer(t *testing.T) {
	t.Parallel()
	res := render(t, "custom", Containerd)
	got := hostURLs(res.Files["docker.io/hosts.toml"])
	want := []string{
		"http://127.0.0.1:5000",                // loopback: plain HTTP
		"http://mirror.corp:5000/v2/dockerhub", // insecureRegistries: plain HTTP
		"https://hub.mirror.example",
		"http://[::1]:5003",
	}
	if !slices.Equal(got, want) {
		t.Errorf("docker.io hosts = %q, want %q", got, want)
	}
	// The IPv6 mirror makes the file use dotted keys, which containerd 1.x
	// can read (a [host."http://[::1]:5003"] header it cannot).
	if !bytes.Contains(res.Files["docker.io/hosts.toml"], []byte("\n[host]\n"+
		"  \"http://127.0.0.1:5000\".capabilities = [\"pull\", \"resolve\"]\n"+
		"  \"http://mirror.corp:5000/v2/dockerhub\".capabilities = [\"pull\", \"resolve\"]\n"+
		"  \"http://mirror.corp:5000/v2/dockerhub\".override_path = true\n")) {
		t.Errorf("docker.io/hosts.toml does not use dotted keys:\n%s", res.Files["docker.io/hosts.toml"])
	}
	if !bytes.Contains(res.Files["docker.io/hosts.toml"], []byte("server = \"https://registry-1.docker.io\"\n")) {
		t.Errorf("docker.io server is not registry-1.docker.io:\n%s", res.Files["docker.io/hosts.toml"])
	}
	if got := hostURLs(res.Files["ghcr.io/hosts.toml"]); !slices.Equal(got, []string{"https://m.example/v2/ghcr.io", "https://ghcr.mirror.example"}) {
		t.Errorf("ghcr.io hosts = %q: {registry} not expanded to the source registry", got)
	}
	// {registry} with a port cannot be a path; the rest of the chain stays.
	if got := hostURLs(res.Files["localhost:5002/hosts.toml"]); !slices.Equal(got, []string{"http://localhost:5004"}) {
		t.Errorf("localhost:5002 hosts = %q", got)
	}
	if !bytes.Contains(res.Files["localhost:5002/hosts.toml"], []byte(`server = "http://localhost:5002"`)) {
		t.Errorf("a loopback source registry is not reached over http:\n%s", res.Files["localhost:5002/hosts.toml"])
	}
	if _, ok := res.Files["_default/hosts.toml"]; ok {
		t.Error(`_default/hosts.toml written for a "*" rule whose mirror is a {registry} template`)
	}
	for from, want := range map[string]string{
		"*":                        `cannot name the source registry ("{registry}")`,
		"gcr.io/google-containers": "follow the gcr.io rule instead (mirror.corp:5000/gcr/google-containers/...)",
		"docker.io/library":        "follow the docker.io rule instead",
		"registry.k8s.io/pause":    "are pulled from registry.k8s.io itself",
		"localhost:5002":           "mirror m.example/{registry}: not a valid registry/path",
	} {
		if r := unexpressible(res, from); len(r) != 1 || !strings.Contains(r[0], want) {
			t.Errorf("%s: reasons %q, want one containing %q", from, r, want)
		}
	}
}

func TestContainerdWildcardWithoutTemplateIsDefault(t *testing.T) {
	t.Parallel()
	res := render(t, "wildcard", Containerd)
	def, ok := res.Files["_default/hosts.toml"]
	if !ok {
		t.Fatalf("no _default/hosts.toml; files %v", keys(res.Files))
	}
	if got := hostURLs(def); !slices.Equal(got, []string{"https://mirror.corp/v2/all", "https://mirror2.corp"}) {
		t.Errorf("_default hosts = %q", got)
	}
	if bytes.Contains(def, []byte("server =")) {
		t.Error("_default names a server: it would send every registry's images to one upstream")
	}
	// gcr.io/distroless maps like "*" does and registry.k8s.io/kube-proxy
	// like registry.k8s.io does: both expressed. quay.io/team does not.
	if r := unexpressible(res, "gcr.io/distroless"); r != nil {
		t.Errorf("gcr.io/distroless listed although _default gives the same mirrors: %q", r)
	}
	if r := unexpressible(res, "registry.k8s.io/kube-proxy"); r != nil {
		t.Errorf("registry.k8s.io/kube-proxy listed although registry.k8s.io gives the same mirrors: %q", r)
	}
	if !bytes.Contains(res.Files["registry.k8s.io/hosts.toml"], []byte("# Also expresses registry.k8s.io/kube-proxy")) {
		t.Error("registry.k8s.io/hosts.toml does not say it also expresses registry.k8s.io/kube-proxy")
	}
	if r := unexpressible(res, "quay.io/team"); len(r) != 1 || !strings.Contains(r[0], `follow the "*" rule in _default/hosts.toml instead (mirror.corp/all/team/...)`) {
		t.Errorf("quay.io/team: reasons %q", r)
	}
}

func TestDockerOnlyDockerHubAndBareHosts(t *testing.T) {
	t.Parallel()
	res := render(t, "custom", Docker)
	var got daemonJSON
	dec := json.NewDecoder(bytes.NewReader(res.Files["daemon.json"]))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&got); err != nil {
		t.Fatalf("daemon.json: %v\n%s", err, res.Files["daemon.json"])
	}
	want := []string{"http://127.0.0.1:5000", "https://hub.mirror.example", "http://[::1]:5003"}
	if !slices.Equal(got.RegistryMirrors, want) {
		t.Errorf("registry-mirrors = %q, want %q", got.RegistryMirrors, want)
	}
	if r := unexpressible(res, "docker.io"); len(r) != 1 || !strings.Contains(r[0], "mirror.corp:5000/dockerhub has a path") {
		t.Errorf("docker.io: reasons %q", r)
	}
	for _, from := range []string{"quay.io", "k8s.gcr.io", "gcr.io", "gcr.io/google-containers", "ghcr.io", "localhost:5002", "registry.k8s.io/pause", "*"} {
		if r := unexpressible(res, from); len(r) != 1 || !strings.Contains(r[0], "only applies to Docker Hub") {
			t.Errorf("%s: reasons %q, want the Docker Hub one", from, r)
		}
	}
	if r := unexpressible(res, "docker.io/library"); len(r) != 1 || !strings.Contains(r[0], "not to a path in it") {
		t.Errorf("docker.io/library: reasons %q", r)
	}
}

func TestDockerNothingExpressibleWritesNothing(t *testing.T) {
	t.Parallel()
	// nwcd's Docker Hub mirror is an ECR path: registry-mirrors cannot hold it.
	res := render(t, "nwcd", Docker)
	if len(res.Files) != 0 {
		t.Errorf("files %v, want none", keys(res.Files))
	}
	if len(res.Unexpressible) != 7 {
		t.Errorf("%d rules listed, want all 7 of nwcd:\n%s", len(res.Unexpressible), dump(res))
	}
	if len(res.Notes) != 1 || !strings.Contains(res.Notes[0], "nothing to install") {
		t.Errorf("notes %q", res.Notes)
	}
}

func TestDockerWildcardServesDockerHub(t *testing.T) {
	t.Parallel()
	set, err := rules.Compile([]rules.Rule{{From: "*", To: []string{"mirror.corp", "mirror.corp/all"}}, {From: "quay.io", To: []string{"q.example"}}}, "")
	if err != nil {
		t.Fatal(err)
	}
	res, err := Render(set, Docker, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(res.Files["daemon.json"], []byte(`"https://mirror.corp"`)) {
		t.Errorf("without a docker.io rule the \"*\" rule's bare mirror serves Docker Hub; got\n%s", dump(res))
	}
	if r := unexpressible(res, "*"); len(r) != 2 {
		t.Errorf(`"*": reasons %q, want the path mirror and the Docker Hub limit`, r)
	}
}

func TestCRIOPathPrefixesAndInsecureMirrors(t *testing.T) {
	t.Parallel()
	res := render(t, "custom", CRIO)
	file := string(res.Files["registries.conf"])
	for _, want := range []string{
		"unqualified-search-registries = [\"docker.io\"]\n",
		"[[registry]]\nprefix = \"gcr.io/google-containers\"\nlocation = \"gcr.io/google-containers\"\n\n[[registry.mirror]]\nlocation = \"mirror.corp:5000/gcr/google_containers\"\ninsecure = true\n",
		"[[registry]]\nprefix = \"docker.io/library\"\nlocation = \"docker.io/library\"\n",
		"[[registry]]\nprefix = \"registry.k8s.io/pause\"\nlocation = \"registry.k8s.io/pause\"\n\n[[registry.mirror]]\nlocation = \"docker.io/googlecontainersmirror\"\n",
		"[[registry]]\nprefix = \"localhost:5002\"\nlocation = \"localhost:5002\"\ninsecure = true\n\n[[registry.mirror]]\nlocation = \"localhost:5004\"\ninsecure = true\n",
		// containers/image cannot parse an IPv6 host: [::1]:5003 is left out.
		"[[registry.mirror]]\nlocation = \"hub.mirror.example\"\n\n# docker.io/library",
	} {
		if !strings.Contains(file, want) {
			t.Errorf("registries.conf lacks\n%s\n--- in ---\n%s", want, file)
		}
	}
	// Path rules are expressible here; only "*" and the bad mirrors are not.
	var froms []string
	for _, u := range res.Unexpressible {
		froms = append(froms, u.Rule.From)
	}
	if !slices.Equal(froms, []string{"*", "docker.io", "localhost:5002"}) {
		t.Errorf("unexpressible %q, want [* docker.io localhost:5002]", froms)
	}
	if r := unexpressible(res, "docker.io"); len(r) != 1 || !strings.Contains(r[0], "mirror [::1]:5003: containers/image") {
		t.Errorf("docker.io: reasons %q", r)
	}
}

// TestNoRuleDroppedSilently checks, for every config and format, that each
// rule is in a generated file or in the unexpressible list.
func TestNoRuleDroppedSilently(t *testing.T) {
	t.Parallel()
	for _, name := range goldenConfigs {
		set, opts := load(t, name)
		for _, f := range Formats() {
			res, err := Render(set, f, opts)
			if err != nil {
				t.Fatal(err)
			}
			var all []byte
			for _, b := range res.Files {
				all = append(all, b...)
			}
			for _, r := range set.Rules() {
				if accounted(r, f, all, res) {
					continue
				}
				t.Errorf("%s/%s: rule %s is neither expressed nor listed", name, f, describe(r))
			}
		}
	}
}

// accounted reports whether rule r shows in res: listed as unexpressible, or
// named in a file (every format but docker names each rule it writes).
func accounted(r rules.Rule, f Format, files []byte, res Result) bool {
	for _, u := range res.Unexpressible {
		if u.Rule.From == r.From {
			return true
		}
	}
	if f == Docker {
		if rules.FromKey(r.From) != "docker.io/" && rules.FromKey(r.From) != "docker.io/library" {
			return false
		}
		for _, to := range r.To {
			if !bytes.Contains(files, []byte("://"+strings.ToLower(to)+`"`)) && !bytes.Contains(files, []byte("://"+to+"\"")) {
				return false
			}
		}
		return true
	}
	return bytes.Contains(files, []byte("# "+comment(describe(r))+"\n")) ||
		bytes.Contains(files, []byte("# Also expresses "+r.From+":"))
}

func TestRenderIsDeterministic(t *testing.T) {
	t.Parallel()
	set, opts := load(t, "custom")
	for _, f := range Formats() {
		first, err := Render(set, f, opts)
		if err != nil {
			t.Fatal(err)
		}
		for range 20 {
			again, _ := Render(set, f, opts)
			if !bytes.Equal(dump(first), dump(again)) {
				t.Fatalf("%s: two renders of the same set differ", f)
			}
		}
	}
}

func TestHeaderNamesTheConfig(t *testing.T) {
	t.Parallel()
	set, _ := load(t, "daocloud")
	for _, f := range []Format{Containerd, CRIO} {
		res, _ := Render(set, f, Options{Source: "/etc/detour/config.yaml"})
		for name, b := range res.Files {
			if !bytes.HasPrefix(b, []byte("# Generated by detour from /etc/detour/config.yaml; do not edit by hand.\n")) {
				t.Errorf("%s %s does not start with the header:\n%s", f, name, b)
			}
		}
	}
	res, _ := Render(set, Docker, Options{Source: "/etc/detour/config.yaml"})
	if !strings.Contains(strings.Join(res.Notes, "\n"), "/etc/detour/config.yaml") {
		t.Errorf("docker notes do not name the config (daemon.json cannot): %q", res.Notes)
	}
}

func TestNotesUseTheInstallDir(t *testing.T) {
	t.Parallel()
	set, _ := load(t, "daocloud")
	res, _ := Render(set, Containerd, Options{Dir: "/srv/certs.d"})
	notes := strings.Join(res.Notes, "\n")
	for _, want := range []string{
		"[plugins.\"io.containerd.grpc.v1.cri\".registry]\n      config_path = \"/srv/certs.d\"",
		"[plugins.\"io.containerd.cri.v1.images\".registry]\n      config_path = \"/srv/certs.d\"",
	} {
		if !strings.Contains(notes, want) {
			t.Errorf("notes lack %q:\n%s", want, notes)
		}
	}
}

func TestRenderErrors(t *testing.T) {
	t.Parallel()
	if _, err := Render(nil, Containerd, Options{}); !errors.Is(err, ErrNilSet) {
		t.Errorf("nil set: %v", err)
	}
	set, _ := rules.Compile(nil, "")
	if _, err := Render(set, "podman", Options{}); err == nil || !strings.Contains(err.Error(), `"podman"`) {
		t.Errorf("unknown format: %v", err)
	}
	if _, err := ParseFormat("cri-o"); err == nil {
		t.Error("ParseFormat accepted cri-o")
	}
	for _, f := range Formats() {
		res, err := Render(set, f, Options{})
		if err != nil || len(res.Files) != 0 || len(res.Notes) != 1 {
			t.Errorf("%s with no rules: files %v notes %q err %v", f, keys(res.Files), res.Notes, err)
		}
	}
}

func keys(m map[string][]byte) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
