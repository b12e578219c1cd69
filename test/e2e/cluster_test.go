//go:build e2e

package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// kubeVersion names the cached kube-apiserver binary; keep it in step with KUBE_VERSION in
// hack/ensure-e2e-deps.sh.
const kubeVersion = "v1.32.13"

// Timeouts of the shared cluster. The notes measured 3-4 s from start to ready on two cores;
// the margin is for a loaded CI machine.
const (
	etcdReadyTimeout      = 30 * time.Second
	apiserverReadyTimeout = 90 * time.Second
	stopGrace             = 10 * time.Second
)

// kubeCluster is the etcd + kube-apiserver pair every test in the package shares.
type kubeCluster struct {
	workDir string // certificates, kubeconfig, etcd data; removed at the end
	logDir  string // process logs; kept when the run fails

	ca         *authority
	kubeconfig string
	config     *rest.Config
	client     kubernetes.Interface

	// webhookCert and webhookKey are files holding a loopback serving certificate signed by
	// ca, for detour; webhookTLS is the same pair for in-test webhooks.
	webhookCert, webhookKey string
	webhookTLS              tls.Certificate

	etcd, apiserver *process
}

// cluster is set by TestMain before any test runs.
var cluster *kubeCluster

func TestMain(m *testing.M) { os.Exit(runMain(m)) }

func runMain(m *testing.M) (code int) {
	logDir, keepLogs := os.Getenv("DETOUR_E2E_ARTIFACTS"), true
	if logDir == "" {
		var err error
		if logDir, err = os.MkdirTemp("", "detour-e2e-logs-"); err != nil {
			fmt.Fprintln(os.Stderr, "e2e:", err)
			return 1
		}
		keepLogs = false
	} else if err := os.MkdirAll(logDir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer func() {
		if code != 0 || keepLogs {
			fmt.Fprintf(os.Stderr, "e2e: logs of etcd, kube-apiserver and detour are in %s\n", logDir)
		} else {
			os.RemoveAll(logDir)
		}
	}()

	c, err := startCluster(logDir)
	defer c.stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: starting the cluster:", err)
		return 1
	}
	cluster = c
	return m.Run()
}

// startCluster starts etcd and kube-apiserver on free loopback ports. The returned cluster
// is never nil, so that the caller can always stop whatever did start.
func startCluster(logDir string) (*kubeCluster, error) {
	c := &kubeCluster{logDir: logDir}
	etcdBin, apiserverBin, err := findBinaries()
	if err != nil {
		return c, err
	}
	if c.workDir, err = os.MkdirTemp("", "detour-e2e-"); err != nil {
		return c, err
	}
	if err := c.writeCertificates(); err != nil {
		return c, err
	}
	ports, err := freePorts(3)
	if err != nil {
		return c, err
	}
	etcdClient, etcdPeer, securePort := ports[0], ports[1], ports[2]
	if err := c.startEtcd(etcdBin, etcdClient, etcdPeer); err != nil {
		return c, err
	}
	if err := c.startAPIServer(apiserverBin, etcdClient, securePort); err != nil {
		return c, err
	}
	if err := c.connect(securePort); err != nil {
		return c, err
	}
	return c, c.waitForSystemNamespaces()
}

func findBinaries() (etcd, apiserver string, err error) {
	pathEtcd, _ := exec.LookPath("etcd")
	etcd, err = lookBinary("etcd", os.Getenv("ETCD"), pathEtcd, "/usr/bin/etcd")
	if err != nil {
		return "", "", fmt.Errorf("%w: run hack/ensure-e2e-deps.sh or set ETCD", err)
	}
	cache := os.Getenv("DETOUR_E2E_CACHE")
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(home, ".cache", "detour-e2e")
	}
	apiserver, err = lookBinary("kube-apiserver", os.Getenv("KUBE_APISERVER"), filepath.Join(cache, "kube-apiserver-"+kubeVersion))
	if err != nil {
		return "", "", fmt.Errorf("%w: run hack/ensure-e2e-deps.sh or set KUBE_APISERVER", err)
	}
	return etcd, apiserver, nil
}

func (c *kubeCluster) path(name string) string { return filepath.Join(c.workDir, name) }

func (c *kubeCluster) writeCertificates() error {
	var err error
	if c.ca, err = newAuthority("detour-e2e-ca"); err != nil {
		return err
	}
	files := map[string][]byte{"ca.crt": c.ca.certPEM}
	for _, p := range []struct {
		first, second string // file names of the certificate and key, in that order
		make          func() ([]byte, []byte, error)
	}{
		{"apiserver.crt", "apiserver.key", func() ([]byte, []byte, error) { return c.ca.serving("kube-apiserver") }},
		{"admin.crt", "admin.key", func() ([]byte, []byte, error) { return c.ca.client("detour-e2e-admin", "system:masters") }},
		{"webhook.crt", "webhook.key", func() ([]byte, []byte, error) { return c.ca.serving("detour-e2e-webhook") }},
		{"sa.key", "sa.pub", serviceAccountKeys},
	} {
		first, second, err := p.make()
		if err != nil {
			return err
		}
		files[p.first], files[p.second] = first, second
	}
	for name, data := range files {
		if err := os.WriteFile(c.path(name), data, 0o600); err != nil {
			return err
		}
	}
	c.webhookCert, c.webhookKey = c.path("webhook.crt"), c.path("webhook.key")
	c.webhookTLS, err = tls.X509KeyPair(files["webhook.crt"], files["webhook.key"])
	return err
}

func (c *kubeCluster) startEtcd(bin string, clientPort, peerPort int) error {
	clientURL := "http://127.0.0.1:" + strconv.Itoa(clientPort)
	peerURL := "http://127.0.0.1:" + strconv.Itoa(peerPort)
	cmd := exec.Command(bin,
		"--name=e2e",
		"--data-dir="+c.path("etcd"),
		"--listen-client-urls="+clientURL,
		"--advertise-client-urls="+clientURL,
		"--listen-peer-urls="+peerURL,
		"--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=e2e="+peerURL,
		"--logger=zap",
	)
	var err error
	if c.etcd, err = startProcess("etcd", filepath.Join(c.logDir, "etcd.log"), cmd); err != nil {
		return err
	}
	return c.etcd.waitReady(etcdReadyTimeout, func(ctx context.Context) error {
		return httpOK(ctx, http.DefaultClient, clientURL+"/health")
	})
}

func (c *kubeCluster) startAPIServer(bin string, etcdPort, securePort int) error {
	cmd := exec.Command(bin,
		"--etcd-servers=http://127.0.0.1:"+strconv.Itoa(etcdPort),
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port="+strconv.Itoa(securePort),
		"--cert-dir="+c.path("apiserver-certs"),
		"--tls-cert-file="+c.path("apiserver.crt"),
		"--tls-private-key-file="+c.path("apiserver.key"),
		"--client-ca-file="+c.path("ca.crt"),
		"--authorization-mode=RBAC",
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-account-key-file="+c.path("sa.pub"),
		"--service-account-signing-key-file="+c.path("sa.key"),
		"--service-cluster-ip-range=10.0.0.0/24",
		"--enable-admission-plugins=MutatingAdmissionWebhook,ValidatingAdmissionWebhook",
		// Without kube-controller-manager no namespace gets a "default" ServiceAccount, and
		// this plugin would reject every Pod for lacking one.
		"--disable-admission-plugins=ServiceAccount",
		"--profiling=false",
	)
	var err error
	if c.apiserver, err = startProcess("kube-apiserver", filepath.Join(c.logDir, "kube-apiserver.log"), cmd); err != nil {
		return err
	}
	client, err := c.adminHTTPClient()
	if err != nil {
		return err
	}
	return c.apiserver.waitReady(apiserverReadyTimeout, func(ctx context.Context) error {
		return httpOK(ctx, client, fmt.Sprintf("https://127.0.0.1:%d/readyz", securePort))
	})
}

func (c *kubeCluster) adminHTTPClient() (*http.Client, error) {
	cert, err := tls.LoadX509KeyPair(c.path("admin.crt"), c.path("admin.key"))
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	roots.AddCert(c.ca.cert)
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{
		RootCAs:      roots,
		Certificates: []tls.Certificate{cert},
	}}}, nil
}

// connect writes a kubeconfig (handy for `kubectl --kubeconfig` while debugging a run) and
// builds the clientset from it, which also proves the file is valid.
func (c *kubeCluster) connect(securePort int) error {
	read := func(name string) string {
		b, _ := os.ReadFile(c.path(name))
		return base64.StdEncoding.EncodeToString(b)
	}
	kubeconfig := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: e2e
  cluster:
    server: https://127.0.0.1:%d
    certificate-authority-data: %s
users:
- name: admin
  user:
    client-certificate-data: %s
    client-key-data: %s
contexts:
- name: e2e
  context: {cluster: e2e, user: admin}
current-context: e2e
`, securePort, read("ca.crt"), read("admin.crt"), read("admin.key"))
	c.kubeconfig = c.path("kubeconfig")
	if err := os.WriteFile(c.kubeconfig, []byte(kubeconfig), 0o600); err != nil {
		return err
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", c.kubeconfig)
	if err != nil {
		return fmt.Errorf("loading %s: %w", c.kubeconfig, err)
	}
	// The polling helpers issue many small requests; the default 5 QPS would throttle them.
	cfg.QPS, cfg.Burst = 100, 200
	c.config = cfg
	c.client, err = kubernetes.NewForConfig(cfg)
	return err
}

// waitForSystemNamespaces waits for the namespaces the apiserver creates itself: /readyz
// only says the controller that makes them has started, and the tests use default and
// kube-system.
func (c *kubeCluster) waitForSystemNamespaces() error {
	return c.apiserver.waitReady(30*time.Second, func(ctx context.Context) error {
		for _, ns := range []string{metav1.NamespaceDefault, metav1.NamespaceSystem} {
			if _, err := c.client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); err != nil {
				return err
			}
		}
		return nil
	})
}

// stop ends kube-apiserver, then etcd, each by PID, and removes the work directory.
func (c *kubeCluster) stop() {
	c.apiserver.stop(stopGrace)
	c.etcd.stop(stopGrace)
	if c.workDir != "" {
		os.RemoveAll(c.workDir)
	}
}

func httpOK(ctx context.Context, client *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return errors.New(url + ": " + resp.Status + ": " + string(body))
	}
	return nil
}
