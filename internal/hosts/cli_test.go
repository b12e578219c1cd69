package hosts_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/detourhq/detour/internal/cli"
)

// run calls the detour command line as main does.
func run(args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = cli.Run(context.Background(), args, strings.NewReader(""), &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestCLIPrintsTheFileAloneOnStdout(t *testing.T) {
	t.Parallel()
	code, stdout, stderr := run("hosts", "crio", "--config", "testdata/custom.yaml")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	want, err := os.ReadFile("testdata/custom.crio.golden")
	if err != nil {
		t.Fatal(err)
	}
	file, _, _ := strings.Cut(strings.TrimPrefix(string(want), "# === registries.conf ===\n"), "# === unexpressible ===\n")
	if stdout != file {
		t.Errorf("stdout is not exactly registries.conf (so > FILE would not work):\n%s", stdout)
	}
	for _, want := range []string{
		"detour hosts: warning: not expressed for crio: * -> m.daocloud.io/{registry} (testdata/custom.yaml:24): registries.conf has no prefix",
		"detour hosts: warning: not expressed for crio: localhost:5002 -> m.example/{registry}, LOCALHOST:5004",
		"Install as /etc/containers/registries.conf",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	if strings.Index(stderr, "warning") > strings.Index(stderr, "Install as") {
		t.Error("notes printed before the warnings")
	}
}

func TestCLIContainerdSeparatesFiles(t *testing.T) {
	t.Parallel()
	code, stdout, stderr := run("hosts", "--config", "testdata/aliyun.yaml", "containerd")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	headers := regexp.MustCompile(`(?m)^# === (.*) ===$`).FindAllStringSubmatch(stdout, -1)
	if len(headers) != 2 || headers[0][1] != "k8s.gcr.io/hosts.toml" || headers[1][1] != "registry.k8s.io/hosts.toml" {
		t.Errorf("file headers %q:\n%s", headers, stdout)
	}
	if !strings.Contains(stderr, `config_path = "/etc/containerd/certs.d"`) {
		t.Errorf("notes lack the config.toml lines:\n%s", stderr)
	}
}

func TestCLIOutWritesAndBacksUp(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "daemon.json"), []byte(`{"log-driver": "journald"}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := run("hosts", "docker", "--config", "testdata/daocloud.yaml", "--out", dir)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !regexp.MustCompile(`(?m)^backed up .*/daemon\.json\.bak-\d{14}$`).MatchString(stdout) {
		t.Errorf("stdout does not name the backup:\n%s", stdout)
	}
	if !strings.Contains(stdout, "wrote "+filepath.Join(dir, "daemon.json")+"\n") || !strings.Contains(stdout, "Merge that key into /etc/docker/daemon.json") {
		t.Errorf("stdout lacks what was written and the notes:\n%s", stdout)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "daemon.json"))
	if string(b) != "{\n  \"registry-mirrors\": [\n    \"https://docker.m.daocloud.io\"\n  ]\n}\n" {
		t.Errorf("daemon.json = %s", b)
	}
	if !strings.Contains(stderr, "warning: not expressed for docker: quay.io") {
		t.Errorf("stderr lacks the warnings:\n%s", stderr)
	}

	// Again: nothing changed, nothing backed up.
	_, stdout, _ = run("hosts", "docker", "--config", "testdata/daocloud.yaml", "--out", dir)
	if strings.Contains(stdout, "backed up") {
		t.Errorf("an unchanged file was backed up:\n%s", stdout)
	}
}

func TestCLIUsageErrors(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"hosts"}, {"hosts", "podman"}, {"hosts", "docker", "crio"}} {
		if code, _, stderr := run(args...); code != 2 || !strings.Contains(stderr, "containerd, docker or crio") {
			t.Errorf("%q: exit %d, stderr %q", args, code, stderr)
		}
	}
	if code, _, stderr := run("hosts", "docker", "--config", "testdata/missing.yaml"); code != 1 || !strings.Contains(stderr, "missing.yaml") {
		t.Errorf("missing config: exit %d, stderr %q", code, stderr)
	}
}
