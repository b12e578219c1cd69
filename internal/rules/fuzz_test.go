package rules

import (
	"strings"
	"testing"

	"github.com/distribution/reference"
)

var fuzzSeeds = []string{
	"nginx", "nginx:1.25", "library/nginx", "docker.io/nginx", "index.docker.io/library/nginx:1",
	"registry-1.docker.io/nginx", "Docker.IO/nginx", "quay.io:443/a/b", "localhost:5000/x:1",
	"localhost/x", "[::1]:5000/x", "[2001:db8::1]/x@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
	"nginx:1.25@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
	"a__b/c--d/e.f_g:v1.0_rc-1", "Foo/bar", "foo:5000/bar", "a.b/c", "NGINX", "nginx:", "x@sha512:abc",
	"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "direct.to/busybox:latest",
	"m.daocloud.io/docker.io/library/nginx", "gcr.io/google-containers-x/y", "-a/b", "a-/b", "a_.b",
}

// FuzzScanAgreesWithReference holds the fast scanner to the reference
// library: whatever scan accepts, the library accepts with the same split,
// and parseImage fails exactly when the library does.
func FuzzScanAgreesWithReference(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		named, refErr := reference.ParseNormalizedNamed(s)
		if _, err := parseImage(s); (err == nil) != (refErr == nil) {
			t.Fatalf("parseImage(%q) err = %v, reference says %v", s, err, refErr)
		}
		im, ok := scan(s)
		if !ok {
			return
		}
		if refErr != nil {
			t.Fatalf("scan accepted %q, reference rejects it: %v", s, refErr)
		}
		host := normaliseHost(im.host)
		path := im.path
		if host == "docker.io" && !strings.Contains(path, "/") {
			path = "library/" + path
		}
		if want := normaliseHost(reference.Domain(named)); host != want {
			t.Fatalf("scan(%q) host %q, reference %q", s, host, want)
		}
		// detour also reads registry-1.docker.io and upper-case spellings of
		// docker.io as Docker Hub, where the library leaves "library/" off.
		want := reference.Path(named)
		if host == "docker.io" && !strings.Contains(want, "/") {
			want = "library/" + want
		}
		if path != want {
			t.Fatalf("scan(%q) path %q, reference %q", s, path, want)
		}
		slow, err := parseSlow(s)
		if err != nil || slow.suffix != im.suffix {
			t.Fatalf("scan(%q) suffix %q, reference %q (%v)", s, im.suffix, slow.suffix, err)
		}
	})
}

// FuzzRewrite: Rewrite never panics; its output is the input unchanged or a
// valid reference; a second pass changes nothing unless the first escaped.
func FuzzRewrite(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	set, err := Compile([]Rule{
		{From: "docker.io", To: []string{"docker.m.daocloud.io"}},
		{From: "docker.io/library", To: []string{"hub.corp/official"}},
		{From: "registry.k8s.io", To: []string{"registry.aliyuncs.com/google_containers"}},
		{From: "gcr.io/google-containers", To: []string{"mirror.corp:5000/g", "[::1]:5000/g"}},
		{From: "localhost:5000", To: []string{"googlecontainersmirror"}},
		{From: "*", To: []string{"m.daocloud.io/{registry}"}},
	}, DefaultEscapePrefix)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d := set.Rewrite(s)
		if d.Input != s {
			t.Fatalf("Input %q != %q", d.Input, s)
		}
		if d.Image == s {
			return
		}
		if d.Reason == Escaped {
			if d.Image != strings.TrimPrefix(s, DefaultEscapePrefix) {
				t.Fatalf("escape of %q gave %q", s, d.Image)
			}
			return
		}
		if _, err := reference.ParseNormalizedNamed(d.Image); err != nil {
			t.Fatalf("Rewrite(%q) = %q, not a valid reference: %v", s, d.Image, err)
		}
		if again := set.Rewrite(d.Image); again.Image != d.Image {
			t.Fatalf("not idempotent: %q -> %q -> %q", s, d.Image, again.Image)
		}
		for _, c := range d.Chain() {
			if _, err := reference.ParseNormalizedNamed(c); err != nil {
				t.Fatalf("chain entry %q of %q is not valid: %v", c, s, err)
			}
		}
	})
}
