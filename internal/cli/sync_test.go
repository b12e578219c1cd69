package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// syncSetup starts two in-process registries, pushes images to the first
// and writes a config sending the first to the second under /mirror.
func syncSetup(t *testing.T, tags ...string) (src, dst, cfg string) {
	t.Helper()
	quiet := registry.Logger(log.New(io.Discard, "", 0))
	s := httptest.NewServer(registry.New(quiet))
	d := httptest.NewServer(registry.New(quiet))
	t.Cleanup(s.Close)
	t.Cleanup(d.Close)
	src, dst = strings.TrimPrefix(s.URL, "http://"), strings.TrimPrefix(d.URL, "http://")
	for _, tag := range tags {
		img, err := random.Image(512, 2)
		if err != nil {
			t.Fatal(err)
		}
		ref, err := name.ParseReference(src + "/app:" + tag)
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Write(ref, img); err != nil {
			t.Fatal(err)
		}
	}
	cfg = filepath.Join(t.TempDir(), "detour.yaml")
	y := "presets: []\nmirrors:\n  - from: " + src + "\n    to: " + dst + "/mirror\n"
	if err := os.WriteFile(cfg, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	return src, dst, cfg
}

func runCLI(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Run(context.Background(), args, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

func TestSyncRefusesAnInvalidListNamingEachLine(t *testing.T) {
	t.Parallel()
	src, _, cfg := syncSetup(t, "1")
	list := filepath.Join(t.TempDir(), "images.txt")
	if err := os.WriteFile(list, []byte(src+"/app:1\nNot/Valid\n# fine\nalso bad!\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, stderr := runCLI(t, "", "sync", "--config", cfg, "--images", list)
	if code != 1 || out != "" {
		t.Errorf("exit %d, stdout %q", code, out)
	}
	for _, want := range []string{list + `:2: "Not/Valid"`, list + `:4: "also bad!"`, "nothing copied"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
}

func TestSyncCopiesFromStdinWithJSONAndNamesFailures(t *testing.T) {
	t.Parallel()
	src, dst, cfg := syncSetup(t, "1", "2")
	in := src + "/app:1\n" + src + "/app:2 # second\n" + src + "/app:missing\nelsewhere.example/x:1\n"
	code, out, stderr := runCLI(t, in, "sync", "--config", cfg, "--images", "-", "--output", "json", "--parallel", "2")
	if code != 1 {
		t.Errorf("exit %d with a missing image, want 1", code)
	}
	var recs []syncRecord
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var r syncRecord
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("stdout line %q: %v", line, err)
		}
		recs = append(recs, r)
	}
	got := map[string]syncRecord{}
	for _, r := range recs {
		got[r.Source] = r
	}
	if len(recs) != 4 {
		t.Fatalf("%d records, want 4:\n%s", len(recs), out)
	}
	for _, tag := range []string{"1", "2"} {
		r := got[src+"/app:"+tag]
		if r.Status != "copied" || r.Target != dst+"/mirror/app:"+tag || r.SourceDigest != r.TargetDigest || r.Bytes == 0 {
			t.Errorf("app:%s: %+v", tag, r)
		}
	}
	if r := got[src+"/app:missing"]; r.Status != "failed" || r.Error == "" || r.Line != 3 {
		t.Errorf("missing: %+v", r)
	}
	if r := got["elsewhere.example/x:1"]; r.Status != "skipped" || !strings.Contains(r.Note, "no rule") {
		t.Errorf("unmatched: %+v", r)
	}
	for _, want := range []string{"COPIED", "1 of 4 images failed", src + "/app:missing -> " + dst + "/mirror/app:missing"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
}

func TestSyncDryRunThenCopyThenResync(t *testing.T) {
	t.Parallel()
	src, _, cfg := syncSetup(t, "1")
	in := src + "/app:1\n"
	code, out, _ := runCLI(t, in, "sync", "--config", cfg, "--images", "-", "--dry-run")
	if code != 0 || !strings.Contains(out, "to copy ") || !strings.Contains(out, "missing at the target") || !strings.Contains(out, "TO COPY") {
		t.Errorf("dry run: exit %d\n%s", code, out)
	}
	code, out, _ = runCLI(t, in, "sync", "--config", cfg, "--images", "-")
	if code != 0 || !strings.HasPrefix(out, "copied ") {
		t.Errorf("copy: exit %d\n%s", code, out)
	}
	code, out, _ = runCLI(t, in, "sync", "--config", cfg, "--images", "-")
	if code != 0 || !strings.HasPrefix(out, "present ") {
		t.Errorf("resync: exit %d\n%s", code, out)
	}
}

func TestSyncUsageErrors(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"sync"},
		{"sync", "--images", "x", "--from-cluster"},
		{"sync", "--images", "x", "--parallel", "0"},
		{"sync", "--images", "x", "--output", "yaml"},
		{"sync", "--images", "x", "--platform", "arm64"},
		{"sync", "--images", "x", "--kubeconfig", "k"},
		{"sync", "nginx"},
	} {
		if code, _, stderr := runCLI(t, "", args...); code != 2 || !strings.HasPrefix(stderr, "detour sync: ") {
			t.Errorf("%v: exit %d, stderr %q", args, code, stderr)
		}
	}
}
