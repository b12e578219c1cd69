package webhook

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// CertSource supplies the serving certificate. The server asks it on every
// TLS handshake, so a source that changes its certificate is in effect on the
// next connection, without a restart. Implementations must be safe for
// concurrent use.
type CertSource interface {
	// GetCertificate is tls.Config.GetCertificate.
	GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error)
	// Ready returns nil once a certificate clients can trust is served, and
	// otherwise why not, for /readyz.
	Ready() error
	// Expiry is when the certificate in use expires; zero while there is none.
	Expiry() time.Time
}

// CertFuncs adapts a certificate source made of functions, such as a
// manager that keeps the certificate in a Secret, to a CertSource.
type CertFuncs struct {
	Get func(*tls.ClientHelloInfo) (*tls.Certificate, error)
	// ReadyC is closed once a certificate clients trust is served.
	ReadyC <-chan struct{}
	// ExpiryFunc is when the certificate in use expires.
	ExpiryFunc func() time.Time
}

// GetCertificate implements CertSource.
func (c CertFuncs) GetCertificate(h *tls.ClientHelloInfo) (*tls.Certificate, error) { return c.Get(h) }

// Ready implements CertSource.
func (c CertFuncs) Ready() error {
	select {
	case <-c.ReadyC:
		return nil
	default:
		return errNoCertificate
	}
}

// Expiry implements CertSource.
func (c CertFuncs) Expiry() time.Time { return c.ExpiryFunc() }

var errNoCertificate = errors.New("no serving certificate loaded yet")

// heldCert implements CertSource for one certificate in an atomic pointer.
type heldCert struct {
	cur atomic.Pointer[tls.Certificate]
}

func (h *heldCert) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	if c := h.cur.Load(); c != nil {
		return c, nil
	}
	return nil, errNoCertificate
}

func (h *heldCert) Ready() error {
	if h.cur.Load() == nil {
		return errNoCertificate
	}
	return nil
}

func (h *heldCert) Expiry() time.Time {
	if c := h.cur.Load(); c != nil && c.Leaf != nil {
		return c.Leaf.NotAfter
	}
	return time.Time{}
}

// Certificate returns the certificate in use, nil while none.
func (h *heldCert) Certificate() *tls.Certificate { return h.cur.Load() }

// StaticCert is a CertSource that never changes.
type StaticCert struct{ heldCert }

// NewStaticCert serves cert, which must have Leaf set.
func NewStaticCert(cert *tls.Certificate) *StaticCert {
	s := &StaticCert{}
	s.cur.Store(cert)
	return s
}

// FileCert is a CertSource backed by a PEM certificate and key file, reloaded
// when they change (Run). A pair that does not load — a key that does not
// match, a file half-written — is logged and skipped: the last good pair
// stays in use.
type FileCert struct {
	heldCert
	certPath, keyPath string
	log               *slog.Logger

	mu                    sync.Mutex // guards the bytes below, for reloads
	certPEM, keyPEM       []byte
	badCertPEM, badKeyPEM []byte // the last pair refused, so it is logged once
}

// LoadFileCert loads the pair at certPath and keyPath. It fails if they do
// not load now; later failures keep the last good pair.
func LoadFileCert(certPath, keyPath string, log *slog.Logger) (*FileCert, error) {
	c := &FileCert{certPath: certPath, keyPath: keyPath, log: orDiscard(log)}
	if _, err := c.reload(); err != nil {
		return nil, err
	}
	return c, nil
}

// Run watches the files until ctx is done.
func (c *FileCert) Run(ctx context.Context) {
	c.run(ctx, watching{poll: CertPollInterval})
}

func (c *FileCert) run(ctx context.Context, w watching) {
	watchFiles(ctx, c.log, w, func() {
		if changed, err := c.reload(); err != nil {
			if changed {
				c.log.Error("serving certificate not reloaded; keeping the last good one", slog.Any("error", err))
			}
		} else if changed {
			leaf := c.Certificate().Leaf
			c.log.Info("serving certificate reloaded", slog.String("subject", leaf.Subject.String()),
				slog.Time("not_after", leaf.NotAfter), slog.String("serial", leaf.SerialNumber.Text(16)))
		}
	}, c.certPath, c.keyPath)
}

// reload reads the files and swaps in the pair if it changed and loads. It
// reports whether the files differed from both the pair in use and the last
// pair refused.
func (c *FileCert) reload() (bool, error) {
	certPEM, err := os.ReadFile(c.certPath)
	if err != nil {
		return false, fmt.Errorf("reading certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(c.keyPath)
	if err != nil {
		return false, fmt.Errorf("reading key: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if bytes.Equal(certPEM, c.certPEM) && bytes.Equal(keyPEM, c.keyPEM) {
		return false, nil
	}
	refusedBefore := bytes.Equal(certPEM, c.badCertPEM) && bytes.Equal(keyPEM, c.badKeyPEM)
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		c.badCertPEM, c.badKeyPEM = certPEM, keyPEM
		return !refusedBefore, fmt.Errorf("loading %s and %s: %w", c.certPath, c.keyPath, err)
	}
	c.cur.Store(&cert) // X509KeyPair sets Leaf
	c.certPEM, c.keyPEM = certPEM, keyPEM
	return true, nil
}

// SelfSignedValidity is how long a generated certificate is valid. It only
// serves until a real one is configured, and is made anew at every start.
const SelfSignedValidity = 365 * 24 * time.Hour

// SelfSigned makes an ECDSA P-256 certificate for hosts (DNS names or IP
// addresses), valid from now, and returns it with its PEM (the certificate
// only, never the key).
func SelfSigned(hosts []string, now time.Time) (*tls.Certificate, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generating a key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, nil, fmt.Errorf("generating a serial number: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "detour self-signed", Organization: []string{"detour"}},
		NotBefore:             now.Add(-time.Minute), // a client's clock a little behind still accepts it
		NotAfter:              now.Add(SelfSignedValidity),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true, // so the certificate can be its own caBundle
	}
	if len(hosts) > 0 {
		tmpl.Subject.CommonName = hosts[0]
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("creating the certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("parsing the certificate: %w", err)
	}
	cert := &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
	return cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

// SelfSignedHosts are the names a generated certificate is made for:
// localhost, the loopback addresses and this host's name.
func SelfSignedHosts() []string {
	hosts := []string{"localhost", "127.0.0.1", "::1"}
	if h, err := os.Hostname(); err == nil && h != "" && h != "localhost" {
		hosts = append(hosts, h)
	}
	return hosts
}
