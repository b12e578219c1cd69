package hosts

import (
	"bytes"
	"encoding/json"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/detourhq/detour/internal/rules"
)

// FuzzRender renders arbitrary rule sets that compile and checks what every
// consumer relies on: no error, the same bytes twice, local file paths,
// daemon.json that decodes into bare http(s) URLs, hosts.toml URLs that parse
// with the path containerd will request, and no rule dropped silently.
// TOML validity against the runtimes' own parsers is fuzzed in the
// containerdcheck module.
func FuzzRender(f *testing.F) {
	f.Add("docker.io", "docker.m.daocloud.io", "k8s.gcr.io", "registry.aliyuncs.com/google_containers", "*", "m.daocloud.io/{registry}", "mirror.corp:5000")
	f.Add("gcr.io/google-containers", "127.0.0.1:5000/gcr", "gcr.io", "mirror.corp:5000/gcr", "*", "mirror.corp/all", "")
	f.Add("localhost:5002", "m.example/{registry}", "Quay.IO:443", "LOCALHOST:5004", "docker.io/library", "googlecontainersmirror", "localhost:5004")
	f.Add("[::1]:5000", "[::1]:5001/x", "index.docker.io", "registry-1.docker.io/mirror", "*", "a.b/{registry}/c", "a.b")
	f.Fuzz(func(t *testing.T, from1, to1, from2, to2, from3, to3, insecure string) {
		var list []rules.Rule
		for _, r := range [][2]string{{from1, to1}, {from2, to2}, {from3, to3}} {
			list = append(list, rules.Rule{From: r[0], To: strings.Split(r[1], ",")})
		}
		set, err := rules.Compile(list, "")
		if err != nil {
			return
		}
		opts := Options{Source: "fuzz", Insecure: []string{insecure}}
		for _, format := range Formats() {
			res, err := Render(set, format, opts)
			if err != nil {
				t.Fatalf("%s: %v", format, err)
			}
			again, _ := Render(set, format, opts)
			if !bytes.Equal(dump(res), dump(again)) {
				t.Fatalf("%s: not deterministic", format)
			}
			var all []byte
			for name, b := range res.Files {
				if !filepath.IsLocal(filepath.FromSlash(name)) {
					t.Fatalf("%s: file path %q leaves the directory", format, name)
				}
				all = append(all, b...)
				if format == Containerd {
					checkHostsURLs(t, b)
				}
			}
			if format == Docker && len(res.Files) > 0 {
				var d daemonJSON
				if err := json.Unmarshal(res.Files["daemon.json"], &d); err != nil || len(d.RegistryMirrors) == 0 {
					t.Fatalf("daemon.json: %v\n%s", err, res.Files["daemon.json"])
				}
				for _, m := range d.RegistryMirrors {
					u, err := url.Parse(m)
					if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != "" {
						t.Fatalf("registry-mirrors entry %q is not a bare scheme://host[:port]", m)
					}
				}
			}
			for _, r := range set.Rules() {
				if !accounted(r, format, all, res) {
					t.Fatalf("%s: rule %s neither expressed nor listed\n%s", format, describe(r), dump(res))
				}
			}
		}
	})
}

// checkHostsURLs parses each host URL of a hosts.toml the way containerd
// does (net/url) and checks the API root it will use.
func checkHostsURLs(t *testing.T, file []byte) {
	t.Helper()
	lines := strings.Split(string(file), "\n")
	for i, line := range lines {
		var raw string
		var override bool
		if u, ok := strings.CutPrefix(line, `[host."`); ok {
			raw = strings.TrimSuffix(u, `"]`)
			override = i+2 < len(lines) && lines[i+2] == "  override_path = true"
		} else if u, ok := strings.CutPrefix(line, `  "`); ok && strings.HasSuffix(u, `".capabilities = ["pull", "resolve"]`) {
			raw = strings.TrimSuffix(u, `".capabilities = ["pull", "resolve"]`)
			override = i+1 < len(lines) && lines[i+1] == "  "+tomlString(raw)+".override_path = true"
		} else {
			continue
		}
		u, err := url.Parse(raw)
		if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
			t.Fatalf("host URL %q: %v", raw, err)
		}
		if (u.Path != "") != override {
			t.Fatalf("host URL %q: a path must come with override_path and only then", raw)
		}
		if override && !strings.HasPrefix(u.Path, "/v2/") {
			t.Fatalf("host URL %q: the overriding path must be the API root /v2/PATH", raw)
		}
	}
}
