package hosts_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The real containerd from Debian, and its client.
const (
	containerdBinary = "/usr/bin/containerd"
	ctrBinary        = "/usr/bin/ctr"
)

// Bounds for a loaded 2-core machine: containerd answers within a second
// or two here.
const (
	containerdReady = 60 * time.Second
	containerdStop  = 10 * time.Second
	ctrTimeout      = 2 * time.Minute
)

// containerd is one running daemon.
type containerd struct {
	sock string // the grpc address, for ctr -a
	cmd  *exec.Cmd
	done chan struct{}
	log  string
}

// startContainerd runs /usr/bin/containerd as this (root) user with root,
// state, grpc and ttrpc addresses, and the opt plugin's directory all under
// a fresh temp dir, and the CRI plugin off (the test needs only the content
// store, the image service and a snapshotter). It stops the daemon by its PID
// in t.Cleanup. Without root or the binaries the test fails: the point of
// the test is the real daemon.
func startContainerd(t *testing.T) *containerd {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatalf("this test runs the real containerd, which needs root: run the tests as root (and hack/ensure-test-deps.sh as root to install containerd)")
	}
	for _, bin := range []string{containerdBinary, ctrBinary} {
		if _, err := os.Stat(bin); err != nil {
			t.Fatalf("%s not found: run hack/ensure-test-deps.sh as root (Debian package containerd)", bin)
		}
	}
	// A short directory: unix socket paths are limited to 108 bytes.
	dir, err := os.MkdirTemp("", "detour-ctrd-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	c := &containerd{sock: filepath.Join(dir, "containerd.sock"), log: filepath.Join(dir, "containerd.log"), done: make(chan struct{})}
	cfg := fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[grpc]
  address = %q

[ttrpc]
  address = %q

[plugins."io.containerd.internal.v1.opt"]
  path = %q
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), c.sock, c.sock+".ttrpc", filepath.Join(dir, "opt"))
	cfgPath := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(c.log)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close() // the child holds its own descriptor
	c.cmd = exec.Command(containerdBinary, "--config", cfgPath, "--log-level", "debug")
	c.cmd.Stdout, c.cmd.Stderr = logf, logf
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := c.cmd.Start(); err != nil {
		t.Fatalf("starting containerd: %v", err)
	}
	go func() { _ = c.cmd.Wait(); close(c.done) }()
	t.Cleanup(func() {
		c.stop()
		if t.Failed() {
			b, _ := os.ReadFile(c.log)
			if len(b) > 32<<10 {
				b = b[len(b)-32<<10:]
			}
			t.Logf("containerd log (tail):\n%s", b)
		}
	})

	deadline := time.Now().Add(containerdReady)
	for {
		select {
		case <-c.done:
			b, _ := os.ReadFile(c.log)
			t.Fatalf("containerd exited early (%v):\n%s", c.cmd.ProcessState, b)
		default:
		}
		if conn, err := net.Dial("unix", c.sock); err == nil {
			conn.Close()
			if _, err := c.ctr(t, "version"); err == nil {
				return c
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("containerd did not answer on %s within %v", c.sock, containerdReady)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stop terminates the daemon by its PID: SIGTERM, then SIGKILL.
func (c *containerd) stop() {
	select {
	case <-c.done:
		return
	default:
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(containerdStop):
		_ = c.cmd.Process.Kill()
		<-c.done
	}
}

// ctr runs ctr against the daemon and returns its combined output.
func (c *containerd) ctr(t *testing.T, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), ctrTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, ctrBinary, append([]string{"-a", c.sock}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// testImage is a tiny linux/amd64 image with one real gzip'd tar layer, so
// containerd can unpack it.
type testImage struct {
	config, layer, manifest []byte
	digest                  string // of the manifest
}

func newTestImage(t *testing.T, greeting string) testImage {
	t.Helper()
	var tarBuf bytes.Buffer
	tw := tar.NewWriter(&tarBuf)
	body := []byte(greeting + "\n")
	if err := tw.WriteHeader(&tar.Header{Name: "hello.txt", Mode: 0o644, Size: int64(len(body)), ModTime: time.Unix(0, 0), Typeflag: tar.TypeReg}); err != nil {
		t.Fatal(err)
	}
	tw.Write(body)
	tw.Close()
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(tarBuf.Bytes())
	zw.Close()

	cfg, _ := json.Marshal(map[string]any{
		"architecture": "amd64",
		"os":           "linux",
		"config":       map[string]any{"Cmd": []string{"/hello.txt"}},
		"rootfs":       map[string]any{"type": "layers", "diff_ids": []string{sha(tarBuf.Bytes())}},
	})
	manifest, _ := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.docker.distribution.manifest.v2+json",
		"config": map[string]any{
			"mediaType": "application/vnd.docker.container.image.v1+json",
			"size":      len(cfg),
			"digest":    sha(cfg),
		},
		"layers": []map[string]any{{
			"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
			"size":      gz.Len(),
			"digest":    sha(gz.Bytes()),
		}},
	})
	return testImage{config: cfg, layer: gz.Bytes(), manifest: manifest, digest: sha(manifest)}
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// push uploads img to registryURL as repo:tag with the distribution API
// (monolithic blob uploads, then the manifest). It sends no GET, so every
// GET in the registry's log afterwards is a pull.
func push(t *testing.T, registryURL, repo, tag string, img testImage) {
	t.Helper()
	for _, blob := range [][]byte{img.config, img.layer} {
		resp, err := http.Post(registryURL+"/v2/"+repo+"/blobs/uploads/", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("starting a blob upload to %s: %s", repo, resp.Status)
		}
		loc, err := resp.Request.URL.Parse(resp.Header.Get("Location"))
		if err != nil {
			t.Fatalf("upload location %q: %v", resp.Header.Get("Location"), err)
		}
		q := loc.Query()
		q.Set("digest", sha(blob))
		loc.RawQuery = q.Encode()
		put(t, loc.String(), "application/octet-stream", blob)
	}
	put(t, registryURL+"/v2/"+repo+"/manifests/"+url.PathEscape(tag), "application/vnd.docker.distribution.manifest.v2+json", img.manifest)
}

func put(t *testing.T, u, contentType string, body []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPut, u, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT %s: %s", u, resp.Status)
	}
}

// closedPort returns a loopback address where nothing listens (it held a
// listener a moment ago).
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// countLines counts the log lines containing every one of parts.
func countLines(log string, parts ...string) int {
	n := 0
	for _, line := range strings.Split(log, "\n") {
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(line, p)
		}
		if ok {
			n++
		}
	}
	return n
}
