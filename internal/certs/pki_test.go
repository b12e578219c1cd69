package certs

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"net"
	"slices"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

var hosts = ServiceHosts("detour", "detour-system")

func mustCA(t *testing.T, now time.Time, lifetime time.Duration) *KeyPair {
	t.Helper()
	ca, err := NewCA("test-ca", now, lifetime)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func mustServing(t *testing.T, ca *KeyPair, hosts []string, now time.Time, lifetime time.Duration) *KeyPair {
	t.Helper()
	s, err := NewServing(ca, hosts, now, lifetime)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func pool(certs ...*x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range certs {
		p.AddCert(c)
	}
	return p
}

func TestServiceHostsAreTheNamesTheApiserverAndClientsUse(t *testing.T) {
	want := []string{"detour.detour-system.svc", "detour.detour-system.svc.cluster.local", "detour", "detour.detour-system"}
	if got := ServiceHosts("detour", "detour-system"); !slices.Equal(got, want) {
		t.Errorf("ServiceHosts = %q, want %q", got, want)
	}
}

func TestNewCAIsASelfSignedCAValidForItsLifetime(t *testing.T) {
	ca := mustCA(t, t0, DefaultCALifetime)
	c := ca.Cert
	if !c.IsCA || !c.BasicConstraintsValid || c.KeyUsage&x509.KeyUsageCertSign == 0 {
		t.Errorf("IsCA=%v BasicConstraintsValid=%v KeyUsage=%b: not a CA that can sign", c.IsCA, c.BasicConstraintsValid, c.KeyUsage)
	}
	if err := c.CheckSignatureFrom(c); err != nil {
		t.Errorf("not self-signed: %v", err)
	}
	if !c.NotAfter.Equal(t0.Add(DefaultCALifetime)) {
		t.Errorf("NotAfter = %v, want %v", c.NotAfter, t0.Add(DefaultCALifetime))
	}
	if b := t0.Sub(c.NotBefore); b <= 0 || b > maxBackdate {
		t.Errorf("NotBefore is %v before now, want backdated by (0, %v]", b, maxBackdate)
	}
	if _, err := ParseKeyPair(ca.CertPEM, ca.KeyPEM); err != nil {
		t.Errorf("its own PEM does not parse back: %v", err)
	}
}

func TestShortLifetimesAreBackdatedByATenthSoTheyAreNotDueAtBirth(t *testing.T) {
	ca := mustCA(t, t0, 20*time.Second)
	if got, want := t0.Sub(ca.Cert.NotBefore), 2*time.Second; got != want {
		t.Errorf("backdate = %v, want %v", got, want)
	}
	if !RenewAt(ca.Cert).After(t0) {
		t.Errorf("RenewAt = %v, not after its creation %v", RenewAt(ca.Cert), t0)
	}
}

func TestNewServingVerifiesForEveryHostAgainstItsCA(t *testing.T) {
	ca := mustCA(t, t0, DefaultCALifetime)
	all := append(slices.Clone(hosts), "127.0.0.1", "::1", "localhost")
	s := mustServing(t, ca, all, t0, DefaultServingLifetime)
	for _, h := range all {
		if _, err := s.Cert.Verify(x509.VerifyOptions{
			DNSName:     h,
			Roots:       pool(ca.Cert),
			CurrentTime: t0.Add(time.Hour),
			KeyUsages:   []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		}); err != nil {
			t.Errorf("verifying for %q: %v", h, err)
		}
	}
	if _, err := s.Cert.Verify(x509.VerifyOptions{DNSName: "other.detour-system.svc", Roots: pool(ca.Cert), CurrentTime: t0}); err == nil {
		t.Error("the certificate verifies for a host it was not made for")
	}
	if s.Cert.IsCA {
		t.Error("the serving certificate is a CA")
	}
	if !s.Cert.NotAfter.Equal(t0.Add(DefaultServingLifetime)) {
		t.Errorf("NotAfter = %v, want %v", s.Cert.NotAfter, t0.Add(DefaultServingLifetime))
	}
}

func TestNewServingNeverOutlivesItsCA(t *testing.T) {
	ca := mustCA(t, t0, 30*24*time.Hour)
	s := mustServing(t, ca, hosts, t0.Add(20*24*time.Hour), DefaultServingLifetime)
	if !s.Cert.NotAfter.Equal(ca.Cert.NotAfter) {
		t.Errorf("NotAfter = %v, want the CA's %v", s.Cert.NotAfter, ca.Cert.NotAfter)
	}
	if _, err := NewServing(ca, hosts, ca.Cert.NotAfter.Add(time.Second), DefaultServingLifetime); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Errorf("signing with an expired CA: err = %v, want one saying it expired", err)
	}
	if _, err := NewServing(ca, nil, t0, time.Hour); err == nil {
		t.Error("a serving certificate without host names was made")
	}
	if _, err := NewServing(mustServing(t, ca, hosts, t0, time.Hour), hosts, t0, time.Hour); err == nil {
		t.Error("a serving certificate signed another one")
	}
}

func TestRenewAtIsTwoThirdsIntoTheValidity(t *testing.T) {
	c := &x509.Certificate{NotBefore: t0, NotAfter: t0.Add(300 * 24 * time.Hour)}
	if got, want := RenewAt(c), t0.Add(200*24*time.Hour); !got.Equal(want) {
		t.Errorf("RenewAt = %v, want %v", got, want)
	}
}

func TestCoversComparesIPsAsAddressesAndNamesExactly(t *testing.T) {
	c := &x509.Certificate{DNSNames: []string{"detour.detour-system.svc"}, IPAddresses: []net.IP{net.ParseIP("::1"), net.IPv4(127, 0, 0, 1)}}
	for _, tc := range []struct {
		hosts []string
		want  bool
	}{
		{[]string{"detour.detour-system.svc", "127.0.0.1", "0:0::1"}, true},
		{nil, true},
		{[]string{"detour.detour-system.svc.cluster.local"}, false},
		{[]string{"127.0.0.2"}, false},
	} {
		if got := Covers(c, tc.hosts); got != tc.want {
			t.Errorf("Covers(%q) = %v, want %v", tc.hosts, got, tc.want)
		}
	}
}

func TestParseKeyPairRefusesAKeyOfAnotherCertificate(t *testing.T) {
	a, b := mustCA(t, t0, time.Hour), mustCA(t, t0, time.Hour)
	if _, err := ParseKeyPair(a.CertPEM, b.KeyPEM); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Errorf("err = %v, want a mismatch", err)
	}
	if _, err := ParseKeyPair(append(slices.Clone(a.CertPEM), b.CertPEM...), a.KeyPEM); err == nil {
		t.Error("two certificates were accepted as one key pair")
	}
}

func TestParseKeyPairReadsSEC1AndPKCS1Keys(t *testing.T) {
	ca := mustCA(t, t0, time.Hour)
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	ecDER, _ := x509.MarshalECPrivateKey(ec)
	for name, tc := range map[string]struct {
		key  any
		pemK []byte
	}{
		"SEC 1":   {ec, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: ecDER})},
		"PKCS #1": {rsaKey, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsaKey)})},
	} {
		tmpl := &x509.Certificate{SerialNumber: ca.Cert.SerialNumber, NotBefore: t0, NotAfter: t0.Add(time.Hour)}
		pub := tc.key.(crypto.Signer).Public()
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, pub, ca.Key)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ParseKeyPair(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), tc.pemK); err != nil {
			t.Errorf("%s key: %v", name, err)
		}
	}
}

func TestParseCertificatesRejectsWhatIsNotAPEMCertificateBundle(t *testing.T) {
	ca := mustCA(t, t0, time.Hour)
	for name, data := range map[string][]byte{
		"empty":             nil,
		"a key":             ca.KeyPEM,
		"trailing garbage":  append(slices.Clone(ca.CertPEM), "junk"...),
		"corrupt DER":       pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("nope")}),
		"certificate + key": append(slices.Clone(ca.CertPEM), ca.KeyPEM...),
	} {
		if _, err := ParseCertificates(data); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	two := append(slices.Clone(ca.CertPEM), mustCA(t, t0, time.Hour).CertPEM...)
	if got, err := ParseCertificates(append(two, "\n\n"...)); err != nil || len(got) != 2 {
		t.Errorf("a bundle of two with trailing newlines: %d certificates, err %v", len(got), err)
	}
}
