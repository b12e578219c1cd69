package certs

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"slices"
	"time"
)

// Defaults of Policy.
const (
	// DefaultCALifetime is long because a CA change is the one event that needs a caBundle
	// rollover; ten years is what kubeadm gives its cluster CA.
	DefaultCALifetime = 10 * 365 * 24 * time.Hour
	// DefaultServingLifetime is a year, renewed after eight months: short enough that a leaked
	// key is not valid for long, long enough that a renewal that keeps failing has four months
	// to be noticed (the expiry is a metric).
	DefaultServingLifetime = 365 * 24 * time.Hour
	// DefaultCAPropagation is how long a new CA sits in the caBundle before a serving
	// certificate signed by it is issued. The apiserver picks up a webhook configuration
	// change through an informer in well under a second; a minute covers slow apiservers of
	// an HA control plane.
	DefaultCAPropagation = time.Minute
)

// maxBackdate bounds how far NotBefore is set into the past, to absorb clock skew between
// detour's node and the apiservers. Certificates with a short lifetime (tests) are backdated
// by a tenth of it instead, so that the renewal point stays in the future.
const maxBackdate = 5 * time.Minute

// renewNumerator/renewDenominator is the fraction of a certificate's lifetime after which it
// is renewed: two thirds leaves a third of the lifetime (four months for a serving
// certificate) for a renewal that fails to be retried and noticed.
const (
	renewNumerator   = 2
	renewDenominator = 3
)

// KeyPair is a certificate with its private key, in parsed and PEM form.
type KeyPair struct {
	Cert    *x509.Certificate
	Key     crypto.Signer
	CertPEM []byte
	KeyPEM  []byte
}

// NewCA makes a self-signed CA certificate valid from now (minus a small backdate) for
// lifetime.
func NewCA(commonName string, now time.Time, lifetime time.Duration) (*KeyPair, error) {
	tmpl, err := template(pkix.Name{CommonName: commonName}, now, lifetime)
	if err != nil {
		return nil, err
	}
	tmpl.IsCA = true
	tmpl.BasicConstraintsValid = true
	tmpl.MaxPathLenZero = true // it signs serving certificates only, never another CA
	tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature
	return issue(tmpl, nil)
}

// NewServing makes a TLS server certificate signed by ca for hosts (DNS names, or IP
// addresses in textual form). It is valid for lifetime from now, but never past the CA's own
// expiry, since a chain is only as valid as its shortest link.
func NewServing(ca *KeyPair, hosts []string, now time.Time, lifetime time.Duration) (*KeyPair, error) {
	if ca == nil || !ca.Cert.IsCA {
		return nil, errors.New("making serving certificate: no CA to sign it")
	}
	if len(hosts) == 0 {
		return nil, errors.New("making serving certificate: no host names")
	}
	if end := ca.Cert.NotAfter.Sub(now); end < lifetime {
		lifetime = end
	}
	if lifetime <= 0 {
		return nil, fmt.Errorf("making serving certificate: CA %q expired at %s", ca.Cert.Subject.CommonName, ca.Cert.NotAfter.Format(time.RFC3339))
	}
	tmpl, err := template(pkix.Name{CommonName: hosts[0]}, now, lifetime)
	if err != nil {
		return nil, err
	}
	tmpl.DNSNames, tmpl.IPAddresses = splitHosts(hosts)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	return issue(tmpl, ca)
}

// ServiceHosts returns the names under which a Service is reached in a cluster, the ones the
// apiserver checks a webhook certificate against (it uses SERVICE.NAMESPACE.svc).
func ServiceHosts(service, namespace string) []string {
	return []string{
		service + "." + namespace + ".svc",
		service + "." + namespace + ".svc.cluster.local",
		service,
		service + "." + namespace,
	}
}

// RenewAt is when cert is due for renewal: at two thirds of its validity period.
func RenewAt(cert *x509.Certificate) time.Time {
	life := cert.NotAfter.Sub(cert.NotBefore)
	return cert.NotBefore.Add(life / renewDenominator * renewNumerator)
}

// Covers reports whether cert is valid for every one of hosts (DNS names or IP addresses).
func Covers(cert *x509.Certificate, hosts []string) bool {
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			if !slices.ContainsFunc(cert.IPAddresses, ip.Equal) {
				return false
			}
		} else if !slices.Contains(cert.DNSNames, h) {
			return false
		}
	}
	return true
}

func splitHosts(hosts []string) (dns []string, ips []net.IP) {
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			ips = append(ips, ip)
		} else {
			dns = append(dns, h)
		}
	}
	return dns, ips
}

func template(subject pkix.Name, now time.Time, lifetime time.Duration) (*x509.Certificate, error) {
	if lifetime <= 0 {
		return nil, fmt.Errorf("making certificate %q: lifetime %v is not positive", subject.CommonName, lifetime)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("making certificate %q: serial number: %w", subject.CommonName, err)
	}
	backdate := min(maxBackdate, lifetime/10)
	return &x509.Certificate{
		SerialNumber: serial,
		Subject:      subject,
		NotBefore:    now.Add(-backdate).UTC().Truncate(time.Second),
		NotAfter:     now.Add(lifetime).UTC().Truncate(time.Second),
	}, nil
}

// issue signs tmpl with parent, or self-signs it when parent is nil.
func issue(tmpl *x509.Certificate, parent *KeyPair) (*KeyPair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("making certificate %q: generating key: %w", tmpl.Subject.CommonName, err)
	}
	signerCert, signerKey := tmpl, crypto.Signer(key)
	if parent != nil {
		signerCert, signerKey = parent.Cert, parent.Key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signerCert, key.Public(), signerKey)
	if err != nil {
		return nil, fmt.Errorf("making certificate %q: signing: %w", tmpl.Subject.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("making certificate %q: parsing it back: %w", tmpl.Subject.CommonName, err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("making certificate %q: encoding key: %w", tmpl.Subject.CommonName, err)
	}
	return &KeyPair{
		Cert:    cert,
		Key:     key,
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
	}, nil
}

// ParseKeyPair parses one PEM certificate and its PEM private key (PKCS #8, PKCS #1 or SEC 1)
// and checks that they belong together.
func ParseKeyPair(certPEM, keyPEM []byte) (*KeyPair, error) {
	certs, err := ParseCertificates(certPEM)
	if err != nil {
		return nil, err
	}
	if len(certs) != 1 {
		return nil, fmt.Errorf("want exactly one certificate, found %d", len(certs))
	}
	block, _ := pem.Decode(keyPEM)
	if block == nil {
		return nil, errors.New("no PEM block in the private key")
	}
	key, err := parseKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(certs[0].PublicKey) {
		return nil, fmt.Errorf("private key does not match certificate %q", certs[0].Subject.CommonName)
	}
	return &KeyPair{Cert: certs[0], Key: key, CertPEM: bytes.Clone(certPEM), KeyPEM: bytes.Clone(keyPEM)}, nil
}

func parseKey(der []byte) (crypto.Signer, error) {
	if k, err := x509.ParsePKCS8PrivateKey(der); err == nil {
		if s, ok := k.(crypto.Signer); ok {
			return s, nil
		}
		return nil, fmt.Errorf("private key of type %T cannot sign", k)
	}
	if k, err := x509.ParseECPrivateKey(der); err == nil {
		return k, nil
	}
	if k, err := x509.ParsePKCS1PrivateKey(der); err == nil {
		return k, nil
	}
	return nil, errors.New("private key is not PKCS #8, SEC 1 or PKCS #1")
}

// ParseCertificates parses every CERTIFICATE block of a PEM bundle, in order. Anything
// besides certificate blocks, other than whitespace, is an error.
func ParseCertificates(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	rest := data
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("PEM block %d is a %q, want CERTIFICATE", len(certs)+1, block.Type)
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", len(certs)+1, err)
		}
		certs = append(certs, cert)
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, fmt.Errorf("data after certificate %d is not PEM", len(certs))
	}
	if len(certs) == 0 {
		return nil, errors.New("no certificate")
	}
	return certs, nil
}

// EncodeCertificates is the PEM bundle of certs, in order.
func EncodeCertificates(certs []*x509.Certificate) []byte {
	var b bytes.Buffer
	for _, c := range certs {
		_ = pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	return b.Bytes()
}
