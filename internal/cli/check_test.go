package cli

import (
	"bytes"
	"context"
	"io"
	"log"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	ggcr "github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// checkRegistry is an in-process registry on loopback; it returns its host.
func checkRegistry(t *testing.T, images ...string) string {
	t.Helper()
	srv := httptest.NewServer(ggcr.New(ggcr.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	for _, img := range images {
		ref, err := name.ParseReference(host+"/"+img, name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		im, err := random.Image(64, 1)
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Write(ref, im); err != nil {
			t.Fatal(err)
		}
	}
	return host
}

func deadHost(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func runCheckCommand(t *testing.T, config string, args ...string) (int, string, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	code := Run(context.Background(), append([]string{"check", "--config", path}, args...), strings.NewReader(""), &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// row matches one table row: the cells in order, separated by spaces.
func row(cells ...string) *regexp.Regexp {
	for i, c := range cells {
		cells[i] = regexp.QuoteMeta(c)
	}
	return regexp.MustCompile(`(?m)^` + strings.Join(cells, ` +`))
}

func TestCheckProbesEveryDistinctMirrorHost(t *testing.T) {
	good := checkRegistry(t)
	dead := deadHost(t)
	config := "presets: []\ncheck:\n  timeout: 5s\nmirrors:\n" +
		"  - from: docker.io\n    to: [" + dead + ", " + good + "]\n" +
		"  - from: quay.io\n    to: " + good + "/quay\n" +
		"  - from: \"*\"\n    to: " + good + "/{registry}\n"
	code, out, stderr := runCheckCommand(t, config)
	if code != 0 {
		t.Fatalf("exit %d, stderr %s; want 0 without --strict", code, stderr)
	}
	for _, re := range []*regexp.Regexp{
		row("MIRROR", "REACHABLE", "LATENCY", "AUTH", "NOTE"),
		regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(good) + ` +yes +[0-9.]+[µm]?s +none +plain HTTP$`),
		row(dead, "no", "-", "-", "connection refused (nothing listening)"),
		regexp.MustCompile(`(?m)^2 mirrors: 1 ok, 1 unreachable, 0 with problems$`),
	} {
		if !re.MatchString(out) {
			t.Errorf("output lacks %s:\n%s", re, out)
		}
	}
	if n := strings.Count(out, good); n != 1 {
		t.Errorf("%s listed %d times, want once (three rules share it):\n%s", good, n, out)
	}
	if code, _, _ := runCheckCommand(t, config, "--strict"); code != 1 {
		t.Errorf("--strict with an unreachable mirror: exit %d, want 1", code)
	}
}

func TestCheckImagesShowsEachCandidateAndTheChoice(t *testing.T) {
	has := checkRegistry(t, "library/nginx:1.25")
	lacks := checkRegistry(t)
	dead := deadHost(t)
	config := "presets: []\ncheck:\n  timeout: 5s\nmirrors:\n" +
		"  - from: docker.io\n    to: [" + dead + ", " + lacks + ", " + has + "]\n"
	code, out, stderr := runCheckCommand(t, config, "nginx:1.25", "nginx:1.26", "quay.io/a/b:1")
	if code != 0 {
		t.Fatalf("exit %d, stderr %s", code, stderr)
	}
	for _, re := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^note: check.enabled is false`),
		row("nginx:1.25 -> " + has + "/library/nginx:1.25"),
		row("  1. "+dead+"/library/nginx:1.25", "error: connection refused (nothing listening)"),
		row("  2. "+lacks+"/library/nginx:1.25", "lacks it"),
		row("  3. "+has+"/library/nginx:1.25", "has it (chosen)"),
		row("nginx:1.26 -> nginx:1.26", "no mirror has it: the original is kept"),
		row("  3. "+has+"/library/nginx:1.26", "lacks it"),
		row("quay.io/a/b:1 -> quay.io/a/b:1", "unchanged: no rule matches"),
	} {
		if !re.MatchString(out) {
			t.Errorf("output lacks %s:\n%s", re, out)
		}
	}
	if code, _, _ := runCheckCommand(t, config, "--strict", "nginx:1.25"); code != 0 {
		t.Errorf("--strict with an image a mirror has: exit %d, want 0", code)
	}
	if code, _, _ := runCheckCommand(t, config, "--strict", "nginx:1.26"); code != 1 {
		t.Errorf("--strict with an image no mirror has: exit %d, want 1", code)
	}
}
