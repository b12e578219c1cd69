package regtest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Binary is the registry server the tests run.
const Binary = "/usr/bin/docker-registry"

// depsHint is the message of a test that lacks the Debian packages.
const depsHint = "run hack/ensure-test-deps.sh"

// Startup bounds: the registry answers /v2/ within a few hundred
// milliseconds here; a loaded 2-core machine gets generous slack.
const (
	readyTimeout = 20 * time.Second
	stopTimeout  = 5 * time.Second
	startTries   = 5 // another process may grab the free port first
	logTailBytes = 64 << 10
)

// Options selects how a registry runs. The zero value is a plain-HTTP
// registry without auth.
type Options struct {
	// TLS serves HTTPS with a certificate for 127.0.0.1 signed by a fresh CA
	// ([Registry.CAPEM]).
	TLS bool
	// User and Password, when User is set, turn on htpasswd basic auth.
	User, Password string
	// ProxyRemote, when set, makes the registry a pull-through cache of that
	// URL (e.g. another Registry's URL). The upstream must already run.
	ProxyRemote string
	// ProxyCAPEM is trusted by the cache when it talks to a TLS ProxyRemote.
	ProxyCAPEM []byte
}

// Registry is one running docker-registry.
type Registry struct {
	// Host is "127.0.0.1:PORT", the registry part of image references.
	Host string
	// URL is "http://Host" or "https://Host".
	URL string
	// CAPEM is the PEM of the CA that signed the server certificate (TLS only).
	CAPEM []byte
	// User and Password are the basic-auth credentials ("" without auth).
	User, Password string
	// Dir is the storage root directory.
	Dir string

	cmd     *exec.Cmd
	logPath string
	done    chan struct{} // closed when the process has exited
	stop    sync.Once
}

// Start runs a registry for the test and stops it in t.Cleanup.
func Start(t testing.TB, opts Options) *Registry {
	t.Helper()
	if _, err := os.Stat(Binary); err != nil {
		t.Fatalf("regtest: %s not found: %s", Binary, depsHint)
	}
	dir := t.TempDir()
	r := &Registry{User: opts.User, Password: opts.Password, Dir: filepath.Join(dir, "storage")}
	var tlsFiles [2]string
	if opts.TLS {
		var err error
		r.CAPEM, tlsFiles, err = makeCert(dir)
		if err != nil {
			t.Fatalf("regtest: making a certificate: %v", err)
		}
	}
	htpasswd := ""
	if opts.User != "" {
		htpasswd = filepath.Join(dir, "htpasswd")
		if err := writeHtpasswd(htpasswd, opts.User, opts.Password); err != nil {
			t.Fatalf("regtest: %v", err)
		}
	}
	var proxyCA string
	if len(opts.ProxyCAPEM) > 0 {
		proxyCA = filepath.Join(dir, "upstream-ca.pem")
		if err := os.WriteFile(proxyCA, opts.ProxyCAPEM, 0o600); err != nil {
			t.Fatalf("regtest: %v", err)
		}
	}
	var lastErr error
	for range startTries {
		port, err := freePort()
		if err != nil {
			t.Fatalf("regtest: finding a free port: %v", err)
		}
		r.Host = fmt.Sprintf("127.0.0.1:%d", port)
		r.URL = "http://" + r.Host
		if opts.TLS {
			r.URL = "https://" + r.Host
		}
		cfg := filepath.Join(dir, "config.yml")
		if err := os.WriteFile(cfg, []byte(configYAML(r, opts, tlsFiles, htpasswd)), 0o600); err != nil {
			t.Fatalf("regtest: %v", err)
		}
		if lastErr = r.run(cfg, proxyCA); lastErr == nil {
			break
		}
		// Print what the failed attempt logged before trying the next port.
		t.Logf("regtest: registry attempt on %s failed: %v\n%s", r.Host, lastErr, r.logTail())
	}
	if lastErr != nil {
		t.Fatalf("regtest: starting %s: %v", Binary, lastErr)
	}
	t.Cleanup(func() {
		r.Stop()
		if t.Failed() {
			t.Logf("regtest: log of the registry at %s:\n%s", r.Host, r.logTail())
		}
	})
	return r
}

// run starts the process and waits until /v2/ answers.
func (r *Registry) run(cfg, proxyCA string) error {
	r.logPath = cfg + ".log"
	logf, err := os.Create(r.logPath)
	if err != nil {
		return err
	}
	defer logf.Close() // the child holds its own descriptor
	cmd := exec.Command(Binary, "serve", cfg)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = os.Environ()
	if proxyCA != "" {
		cmd.Env = append(cmd.Env, "SSL_CERT_FILE="+proxyCA)
	}
	// Its own process group, so a Ctrl-C on the test does not race Stop.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	r.cmd, r.done, r.stop = cmd, make(chan struct{}), sync.Once{}
	go func() { _ = cmd.Wait(); close(r.done) }()

	client := &http.Client{Transport: r.Transport(), Timeout: 2 * time.Second}
	deadline := time.Now().Add(readyTimeout)
	for time.Now().Before(deadline) {
		select {
		case <-r.done:
			return fmt.Errorf("exited early: %v", cmd.ProcessState)
		default:
		}
		resp, err := client.Get(r.URL + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnauthorized {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	r.Stop()
	return fmt.Errorf("/v2/ did not answer within %v", readyTimeout)
}

// Stop terminates the registry by its PID (SIGTERM, then SIGKILL) and waits
// for it. It is safe to call more than once; t.Cleanup calls it too.
func (r *Registry) Stop() {
	r.stop.Do(func() {
		if r.cmd == nil || r.cmd.Process == nil {
			return
		}
		_ = r.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-r.done:
		case <-time.After(stopTimeout):
			_ = r.cmd.Process.Kill()
			<-r.done
		}
	})
}

// Log returns the registry's whole log so far: its own lines and an access
// log line per request ("127.0.0.1 - - [...] \"PUT /v2/... HTTP/1.1\" 201
// ..."), which tests may count.
func (r *Registry) Log() string {
	b, err := os.ReadFile(r.logPath)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	return string(b)
}

func (r *Registry) logTail() string {
	s := r.Log()
	if len(s) > logTailBytes {
		s = "...\n" + s[len(s)-logTailBytes:]
	}
	return s
}

// Transport returns an HTTP transport that trusts the registry's CA (a
// clone of http.DefaultTransport for a plain-HTTP registry).
func (r *Registry) Transport() *http.Transport {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if len(r.CAPEM) > 0 {
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(r.CAPEM)
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return tr
}

// DockerConfig writes a docker config.json with the credentials of every
// given registry that has a User into a new directory and returns the
// directory, ready for DOCKER_CONFIG.
func DockerConfig(t testing.TB, regs ...*Registry) string {
	t.Helper()
	auths := map[string]map[string]string{}
	for _, r := range regs {
		if r.User == "" {
			continue
		}
		auths[r.Host] = map[string]string{"auth": base64.StdEncoding.EncodeToString([]byte(r.User + ":" + r.Password))}
	}
	b, err := json.Marshal(map[string]any{"auths": auths})
	if err != nil {
		t.Fatalf("regtest: %v", err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "config.json"), b, 0o600); err != nil {
		t.Fatalf("regtest: %v", err)
	}
	return dir
}

func configYAML(r *Registry, opts Options, tlsFiles [2]string, htpasswd string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `version: 0.1
log:
  level: info
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: %q
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: %q
  secret: regtest-not-secret
  relativeurls: true
`, r.Dir, r.Host)
	if opts.TLS {
		fmt.Fprintf(&b, "  tls:\n    certificate: %q\n    key: %q\n", tlsFiles[0], tlsFiles[1])
	}
	if htpasswd != "" {
		fmt.Fprintf(&b, "auth:\n  htpasswd:\n    realm: regtest\n    path: %q\n", htpasswd)
	}
	if opts.ProxyRemote != "" {
		fmt.Fprintf(&b, "proxy:\n  remoteurl: %q\n", opts.ProxyRemote)
	}
	return b.String()
}

// writeHtpasswd writes a bcrypt htpasswd file: the registry accepts nothing
// else. golang.org/x/crypto is not in the module graph, so htpasswd -B it is.
func writeHtpasswd(path, user, password string) error {
	if _, err := exec.LookPath("htpasswd"); err != nil {
		return fmt.Errorf("htpasswd not found: %s", depsHint)
	}
	var stderr bytes.Buffer
	cmd := exec.Command("htpasswd", "-Bbn", user, password)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("htpasswd -Bbn %s: %v: %s", user, err, stderr.String())
	}
	return os.WriteFile(path, bytes.TrimSpace(out), 0o600)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// makeCert writes a server certificate for 127.0.0.1 and localhost signed
// by a fresh CA into dir; it returns the CA PEM and the cert and key paths.
func makeCert(dir string) ([]byte, [2]string, error) {
	var files [2]string
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, files, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "regtest CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, files, err
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, files, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, files, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		DNSNames:     []string{"localhost"},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		return nil, files, err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, files, err
	}
	files = [2]string{filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")}
	if err := errors.Join(
		os.WriteFile(files[0], pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600),
		os.WriteFile(files[1], pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600),
	); err != nil {
		return nil, files, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), files, nil
}
