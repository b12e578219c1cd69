package webhook

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// writePair makes a self-signed pair for localhost and writes it to dir as
// tls.crt and tls.key; it returns the certificate.
func writePair(t *testing.T, dir string) *x509.Certificate {
	t.Helper()
	cert, certPEM, err := SelfSigned([]string{"localhost", "127.0.0.1"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalECPrivateKey(cert.PrivateKey.(*ecdsa.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	writeAtomically(t, filepath.Join(dir, "tls.crt"), certPEM)
	writeAtomically(t, filepath.Join(dir, "tls.key"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}))
	return cert.Leaf
}

// writeAtomically replaces a file by a rename, as most tools do.
func writeAtomically(t *testing.T, path string, data []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// serveTLS serves HTTPS with certs on a loopback port until the test ends
// and returns the address. (httptest's server would answer a handshake
// without SNI with its own certificate.)
func serveTLS(t *testing.T, certs CertSource) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler:           http.NotFoundHandler(),
		TLSConfig:         &tls.Config{GetCertificate: certs.GetCertificate, MinVersion: tls.VersionTLS12},
		ReadHeaderTimeout: ReadHeaderTimeout,
	}
	var wg sync.WaitGroup
	wg.Go(func() { _ = srv.ServeTLS(ln, "", "") })
	t.Cleanup(func() {
		srv.Close()
		wg.Wait()
	})
	return ln.Addr().String()
}

// servedCert makes a TLS handshake with addr and returns the leaf presented.
func servedCert(t *testing.T, addr string) *x509.Certificate {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // the test inspects the certificate itself
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0]
}

// eventually polls cond until it holds; the deadline only stops a test that
// would otherwise hang, it is no timing assertion.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("still not %s after 30 s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestFileCertReloadsOnChange(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	first := writePair(t, dir)
	fc, err := LoadFileCert(filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"), nil)
	if err != nil {
		t.Fatal(err)
	}
	addr := serveTLS(t, fc)

	// Events only: a poll that would notice the change is an hour away.
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { fc.run(ctx, watching{poll: time.Hour, started: func() { close(started) }}) })
	stop := func() { cancel(); wg.Wait() }
	defer stop()
	<-started

	if got := servedCert(t, addr); !got.Equal(first) {
		t.Fatalf("serves serial %x, want the first pair's %x", got.SerialNumber, first.SerialNumber)
	}
	second := writePair(t, dir)
	eventually(t, "serving the new certificate", func() bool { return servedCert(t, addr).Equal(second) })
	if got := fc.Expiry(); !got.Equal(second.NotAfter) {
		t.Errorf("Expiry %v, want the new certificate's %v", got, second.NotAfter)
	}

	// A key that does not match the certificate is refused; the last good
	// pair stays. The watch is stopped so that only this test reloads.
	stop()
	_, otherPEM, err := SelfSigned([]string{"other"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	writeAtomically(t, filepath.Join(dir, "tls.crt"), otherPEM)
	if changed, err := fc.reload(); err == nil || !changed {
		t.Errorf("reload of a mismatched pair: changed %v, err %v; want a new error", changed, err)
	}
	if changed, err := fc.reload(); err == nil || changed {
		t.Errorf("second reload of the same mismatched pair: changed %v, err %v; want the error, not as new", changed, err)
	}
	if got := servedCert(t, addr); !got.Equal(second) {
		t.Errorf("after a bad pair serves serial %x, want the last good %x", got.SerialNumber, second.SerialNumber)
	}
}

func TestLoadFileCertFailsOnABadPair(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writePair(t, dir)
	if err := os.WriteFile(filepath.Join(dir, "tls.key"), []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadFileCert(filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"), nil); err == nil {
		t.Error("LoadFileCert of a broken key: no error")
	}
	if _, err := LoadFileCert(filepath.Join(dir, "missing.crt"), filepath.Join(dir, "tls.key"), nil); err == nil {
		t.Error("LoadFileCert of a missing file: no error")
	}
}

func TestSelfSignedCertificate(t *testing.T) {
	t.Parallel()
	hosts := SelfSignedHosts()
	cert, certPEM, err := SelfSigned(hosts, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	key, ok := cert.PrivateKey.(*ecdsa.PrivateKey)
	if !ok || key.Curve != elliptic.P256() {
		t.Errorf("key %T, want ECDSA P-256", cert.PrivateKey)
	}
	block, rest := pem.Decode(certPEM)
	if block == nil || block.Type != "CERTIFICATE" || len(rest) != 0 {
		t.Fatalf("PEM %q: want one CERTIFICATE block and nothing else (never the key)", certPEM)
	}
	// The certificate is its own CA bundle, valid for every host it names.
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	for _, h := range append(hosts, "127.0.0.1") {
		if _, err := cert.Leaf.Verify(x509.VerifyOptions{DNSName: h, Roots: pool}); err != nil {
			t.Errorf("verifying for %s: %v", h, err)
		}
	}
	if ip := net.ParseIP("127.0.0.1"); !cert.Leaf.IPAddresses[0].Equal(ip) {
		t.Errorf("IP SANs %v, want 127.0.0.1 first", cert.Leaf.IPAddresses)
	}
	if _, err := cert.Leaf.Verify(x509.VerifyOptions{DNSName: "example.com", Roots: pool}); err == nil {
		t.Error("the certificate verifies for example.com, a host it was not made for")
	}
}
