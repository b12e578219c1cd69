package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/detourhq/detour/internal/config"
)

func TestDefaultIsTheSpecDefault(t *testing.T) {
	c := config.Default()
	want := &config.Config{
		Enabled:      true,
		Presets:      []string{"daocloud"},
		EscapePrefix: "direct.to/",
		Namespaces: config.Namespaces{
			Include: []string{"*"},
			Exclude: []string{"kube-system", "kube-public", "kube-node-lease"},
		},
		Mirrors:            nil,
		InsecureRegistries: nil,
		Check:              config.Check{Enabled: false, Timeout: time.Second, Budget: 3 * time.Second, TTL: 10 * time.Minute},
		Source:             "<default>",
	}
	c.Mirrors, c.InsecureRegistries = nil, nil // [] and absent mean the same
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("Default() = %+v\nwant        %+v", c, want)
	}
}

func TestEmptyFileIsTheDefault(t *testing.T) {
	for _, in := range []string{"", "\n", "# only a comment\n", "---\n"} {
		c, err := config.ParseBytes([]byte(in))
		if err != nil {
			t.Fatalf("%q: %v", in, err)
		}
		def := config.Default()
		c.Source, def.Source = "", ""
		c.Mirrors, def.Mirrors = nil, nil
		c.InsecureRegistries, def.InsecureRegistries = nil, nil
		if !reflect.DeepEqual(c, def) {
			t.Errorf("%q parsed as %+v, want the default", in, c)
		}
	}
}

func TestOmittedKeysKeepTheirDefaults(t *testing.T) {
	// The ketches lesson: a file without `enabled` must not switch detour off,
	// and a file with only mirrors keeps the preset and the escape.
	c, err := config.ParseBytes([]byte("mirrors:\n  - from: quay.io\n    to: quay.corp\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !c.Enabled || c.EscapePrefix != "direct.to/" || len(c.Presets) != 1 || c.Namespaces.Exclude[0] != "kube-system" {
		t.Fatalf("omitted keys lost their defaults: %+v", c)
	}
	set, err := c.Compile()
	if err != nil {
		t.Fatal(err)
	}
	if got := set.Rewrite("quay.io/a/b").Image; got != "quay.corp/a/b" {
		t.Errorf("user rule: %q", got)
	}
	if got := set.Rewrite("nginx").Image; got != "docker.m.daocloud.io/library/nginx" {
		t.Errorf("preset rule kept: %q", got)
	}
}

func TestParseEveryKey(t *testing.T) {
	in := `
enabled: false
presets: [aliyun, nwcd]
escapePrefix: ""
namespaces:
  include: [team-*, prod]
  exclude: [team-infra]
mirrors:
  - from: quay.io
    to: [quay.m.daocloud.io, quay.mirror.corp]
  - from: "*"
    to: m.daocloud.io/{registry}
insecureRegistries: [localhost:5000, "10.0.0.1:5000"]
check:
  enabled: true
  timeout: 500ms
  budget: 2s
  ttl: 1h
`
	c, err := config.ParseBytes([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if c.Enabled || c.EscapePrefix != "" || !reflect.DeepEqual(c.Presets, []string{"aliyun", "nwcd"}) {
		t.Errorf("top-level keys: %+v", c)
	}
	if !reflect.DeepEqual(c.Mirrors, []config.Mirror{
		{From: "quay.io", To: []string{"quay.m.daocloud.io", "quay.mirror.corp"}, Line: 9},
		{From: "*", To: []string{"m.daocloud.io/{registry}"}, Line: 11},
	}) {
		t.Errorf("mirrors: %+v", c.Mirrors)
	}
	if !reflect.DeepEqual(c.InsecureRegistries, []string{"localhost:5000", "10.0.0.1:5000"}) {
		t.Errorf("insecureRegistries: %v", c.InsecureRegistries)
	}
	if c.Check != (config.Check{Enabled: true, Timeout: 500 * time.Millisecond, Budget: 2 * time.Second, TTL: time.Hour}) {
		t.Errorf("check: %+v", c.Check)
	}
	for ns, want := range map[string]bool{"team-a": true, "prod": true, "team-infra": false, "default": false, "kube-system": false} {
		if got := c.Namespaces.Allows(ns); got != want {
			t.Errorf("Allows(%q) = %v, want %v", ns, got, want)
		}
	}
}

func TestErrorsNameTheLine(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want []string // every error, in order, as LINE: message fragment
	}{
		{"unknown top-level key", "enabeld: true\n", []string{`1: unknown key "enabeld"`}},
		{"unknown key in a rule", "mirrors:\n  - from: quay.io\n    too: x\n", []string{`2: mirror rule without to`, `3: unknown key "too" in a mirror rule`}},
		{"duplicate from", "mirrors:\n- from: quay.io\n  to: a.corp\n- from: Quay.IO\n  to: b.corp\n", []string{`4: from "Quay.IO": another rule has the same from`}},
		{"empty to", "mirrors:\n- from: quay.io\n  to: \"\"\n", []string{`3: to: empty`}},
		{"empty chain", "mirrors:\n- from: quay.io\n  to: []\n", []string{`3: to: the fallback chain is empty`}},
		{"invalid to", "mirrors:\n- from: quay.io\n  to: \"https://quay.corp\"\n", []string{`2: to "https://quay.corp": not a valid registry`}},
		{"to with a tag", "mirrors:\n- from: quay.io\n  to: quay.corp/x:1\n", []string{`2: to "quay.corp/x:1": not a valid registry`}},
		{"invalid from", "mirrors:\n- from: not a host\n  to: a.corp\n", []string{`2: from "not a host": not "*" nor a registry host`}},
		{"empty from (found by FuzzParse)", "mirrors:\n- {from: '', to: '0'}\n", []string{`2: from "": empty`}},
		{"from without a dot", "mirrors:\n- from: myregistry\n  to: a.corp\n", []string{`2: from "myregistry"`}},
		{"bad glob", "namespaces:\n  exclude: [\"team-[\"]\n", []string{`2: namespaces.exclude: "team-[" is not a valid glob`}},
		{"unknown preset", "presets: [daocloud, tuna]\n", []string{`1: unknown preset "tuna" (have aliyun, daocloud, nwcd)`}},
		{"preset twice", "presets: [aliyun, aliyun]\n", []string{`1: preset "aliyun" listed twice`}},
		{"enabled not a bool", "enabled: yes\n", []string{`1: enabled: want true or false, got str "yes"`}},
		{"escape without slash", "escapePrefix: direct.to\n", []string{`1: escapePrefix "direct.to" must end with "/"`}},
		{"bad duration", "check:\n  ttl: forever\n", []string{`2: check.ttl: "forever" is not a positive duration`}},
		{"negative duration", "check:\n  budget: -1s\n", []string{`2: check.budget: "-1s" is not a positive duration`}},
		{"key twice", "enabled: true\nenabled: false\n", []string{`2: key "enabled" given twice`}},
		{"not a mapping", "- a\n- b\n", []string{`1: a config is a mapping of keys`}},
		{"two documents", "enabled: true\n---\nenabled: false\n", []string{`2: a config is one YAML document`}},
		// yaml.v3 itself says line 1 here; the error names the line at fault.
		{"syntax error", "mirrors:\n  - from: a\n   to: b\n", []string{`3: YAML: did not find expected '-' indicator`}},
		{"unclosed quote", "a: 'x\nb: c\n", []string{`1: YAML: found unexpected end of stream`}}, // where the quote opens
		{"tab indentation", "mirrors:\n\t- from: a\n", []string{`2: YAML: `}},
		{"insecure registry not a host", "insecureRegistries: [\"http://x\"]\n", []string{`1: insecureRegistries: "http://x" is not a registry host`}},
		{"placeholder in the host", "mirrors:\n- from: \"*\"\n  to: \"{registry}.corp\"\n", []string{`2: to "{registry}.corp"`}},
		{"many problems at once", "enabled: 1\nmirrors:\n- from: quay.io\n  to: a.corp\n- from: quay.io\n  to: \"bad to\"\nfoo: bar\n",
			[]string{`1: enabled: want true or false`, `5: from "quay.io": another rule`, `5: to "bad to"`, `7: unknown key "foo"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := config.ParseBytes([]byte(tc.in))
			if err == nil {
				t.Fatalf("accepted: %+v", c)
			}
			if c != nil {
				t.Fatalf("an invalid config must not be returned half-filled")
			}
			var list config.ErrorList
			if !errors.As(err, &list) {
				t.Fatalf("error is %T, want config.ErrorList", err)
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tc.want) {
				t.Fatalf("got %d errors, want %d:\n%v", len(lines), len(tc.want), err)
			}
			for i, w := range tc.want {
				if !strings.Contains(lines[i], "<config>:"+w) {
					t.Errorf("error %d = %q, want it to contain %q", i, lines[i], "<config>:"+w)
				}
			}
		})
	}
}

func TestLoadFileNamesTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "detour.yaml")
	if err := os.WriteFile(path, []byte("enabled: true\nmirrors:\n- from: quay.io\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := config.LoadFile(path)
	if err == nil || err.Error() != path+":3: mirror rule without to" {
		t.Fatalf("err = %v, want %s:3: mirror rule without to", err, path)
	}
	if _, err := config.LoadFile(filepath.Join(t.TempDir(), "missing.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
}

func TestRuleOriginsNameFileAndLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "detour.yaml")
	if err := os.WriteFile(path, []byte("mirrors:\n- from: quay.io\n  to: quay.corp\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := config.LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	set, err := c.Compile()
	if err != nil {
		t.Fatal(err)
	}
	if d := set.Rewrite("quay.io/a"); d.Rule.Origin != path+":2" {
		t.Errorf("user rule origin %q", d.Rule.Origin)
	}
	if d := set.Rewrite("nginx"); d.Rule.Origin != "preset daocloud" {
		t.Errorf("preset rule origin %q", d.Rule.Origin)
	}
}

func TestPresets(t *testing.T) {
	names := config.PresetNames()
	if !reflect.DeepEqual(names, []string{"aliyun", "daocloud", "nwcd"}) {
		t.Fatalf("PresetNames() = %v", names)
	}
	// Private registries are never rewritten by a preset.
	private := []string{
		"harbor.corp.example/team/app:1", "localhost:5000/x", "10.1.2.3:5000/x", "[::1]:5000/x",
		"123456789012.dkr.ecr.us-east-1.amazonaws.com/app", "registry.gitlab.com/g/p", "myregistry.local/app",
	}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			ms, err := config.Preset(name)
			if err != nil || len(ms) == 0 {
				t.Fatalf("Preset(%s) = %v, %v", name, ms, err)
			}
			c, err := config.ParseBytes([]byte("presets: [" + name + "]\n"))
			if err != nil {
				t.Fatal(err)
			}
			set, err := c.Compile()
			if err != nil {
				t.Fatal(err)
			}
			for _, img := range private {
				if d := set.Rewrite(img); d.Changed() {
					t.Errorf("preset %s rewrote private image %s to %s", name, img, d.Image)
				}
			}
		})
	}
	if _, err := config.Preset("nope"); err == nil || !strings.Contains(err.Error(), "unknown preset") {
		t.Fatalf("Preset(nope): %v", err)
	}
}

func TestLaterPresetWinsAndUserWinsOverAll(t *testing.T) {
	c, err := config.ParseBytes([]byte("presets: [daocloud, aliyun]\n"))
	if err != nil {
		t.Fatal(err)
	}
	set, _ := c.Compile()
	if got := set.Rewrite("registry.k8s.io/pause:3.9").Image; got != "registry.aliyuncs.com/google_containers/pause:3.9" {
		t.Errorf("later preset: %q", got)
	}
	if got := set.Rewrite("quay.io/a").Image; got != "quay.m.daocloud.io/a" {
		t.Errorf("earlier preset's other rules: %q", got)
	}
}

func TestDefaultYAMLParsesToDefault(t *testing.T) {
	c, err := config.ParseBytes(config.DefaultYAML())
	if err != nil {
		t.Fatal(err)
	}
	def := config.Default()
	c.Source, def.Source = "", ""
	if !reflect.DeepEqual(c, def) {
		t.Fatalf("DefaultYAML parses to %+v, Default() is %+v", c, def)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"", "enabled: true\n", string(config.DefaultYAML()),
		"mirrors:\n- from: quay.io\n  to: [a.corp, b.corp]\n",
		"namespaces:\n  include: ['*']\n", "check:\n  ttl: 1m\n", "presets: [nwcd]\n",
		"mirrors:\n- {from: '*', to: 'm.daocloud.io/{registry}'}\n", "a: &x [1]\nb: *x\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := config.ParseBytes(data)
		if err != nil {
			if c != nil {
				t.Fatal("config returned with an error")
			}
			var list config.ErrorList
			if !errors.As(err, &list) || len(list) == 0 {
				t.Fatalf("error %T %v is not a non-empty ErrorList", err, err)
			}
			return
		}
		// Whatever parses compiles: Parse already compiled it.
		if _, err := c.Compile(); err != nil {
			t.Fatalf("parsed but does not compile: %v", err)
		}
	})
}
