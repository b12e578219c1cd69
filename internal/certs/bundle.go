package certs

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"
)

// Keys of the Secret's data: the first three are the kubernetes.io/tls and cert-manager
// conventions, so other tools read the Secret as they expect.
const (
	KeyServingCert = "tls.crt"
	KeyServingKey  = "tls.key"
	KeyCACerts     = "ca.crt" // every trusted CA, the signing one first: the caBundle
	KeyCAKey       = "ca.key" // the signing CA's key
)

// Annotations of the Secret, in RFC 3339. The expiry ones are for humans and alerting
// (`kubectl get secret -o yaml`); ca-since drives the CA rollover.
const (
	AnnotationNotAfter   = "detour.dev/not-after"    // the serving certificate's NotAfter
	AnnotationCANotAfter = "detour.dev/ca-not-after" // the signing CA's NotAfter
	AnnotationCASince    = "detour.dev/ca-since"     // when the signing CA was made
)

// Bundle is what the Secret holds: a signing CA with its key, older CAs that are still
// trusted, and the serving certificate.
type Bundle struct {
	CA      *KeyPair            // signs new serving certificates
	OldCAs  []*x509.Certificate // still in the caBundle until they expire, after a CA renewal
	Serving *KeyPair
	// CASince is when CA was made. A serving certificate signed by it replaces one signed
	// by an old CA only Policy.CAPropagation later, once every apiserver trusts it.
	CASince time.Time
}

// CABundle is the PEM the webhook configuration's caBundle must hold: every trusted CA.
func (b *Bundle) CABundle() []byte {
	return EncodeCertificates(b.trusted())
}

func (b *Bundle) trusted() []*x509.Certificate {
	return append([]*x509.Certificate{b.CA.Cert}, b.OldCAs...)
}

// TLSCertificate is the serving certificate ready for a tls.Config.
func (b *Bundle) TLSCertificate() *tls.Certificate {
	return &tls.Certificate{
		Certificate: [][]byte{b.Serving.Cert.Raw},
		PrivateKey:  b.Serving.Key,
		Leaf:        b.Serving.Cert,
	}
}

// Encode returns the Secret's data and annotations for b.
func (b *Bundle) Encode() (data map[string][]byte, annotations map[string]string) {
	data = map[string][]byte{
		KeyServingCert: b.Serving.CertPEM,
		KeyServingKey:  b.Serving.KeyPEM,
		KeyCACerts:     b.CABundle(),
		KeyCAKey:       b.CA.KeyPEM,
	}
	annotations = map[string]string{
		AnnotationNotAfter:   b.Serving.Cert.NotAfter.UTC().Format(time.RFC3339),
		AnnotationCANotAfter: b.CA.Cert.NotAfter.UTC().Format(time.RFC3339),
		AnnotationCASince:    b.CASince.UTC().Format(time.RFC3339),
	}
	return data, annotations
}

// Decode parses a Secret's data and annotations. It checks the structure (every key present,
// keys matching certificates, the first CA being a CA) and nothing about time: that is
// Plan's business. A missing or unreadable ca-since counts as the CA's NotBefore.
func Decode(data map[string][]byte, annotations map[string]string) (*Bundle, error) {
	for _, k := range []string{KeyServingCert, KeyServingKey, KeyCACerts, KeyCAKey} {
		if len(data[k]) == 0 {
			return nil, fmt.Errorf("decoding certificate Secret: %s is missing", k)
		}
	}
	cas, err := ParseCertificates(data[KeyCACerts])
	if err != nil {
		return nil, fmt.Errorf("decoding certificate Secret: %s: %w", KeyCACerts, err)
	}
	ca, err := ParseKeyPair(EncodeCertificates(cas[:1]), data[KeyCAKey])
	if err != nil {
		return nil, fmt.Errorf("decoding certificate Secret: %s and %s: %w", KeyCACerts, KeyCAKey, err)
	}
	for i, c := range cas {
		if !c.IsCA || !c.BasicConstraintsValid {
			return nil, fmt.Errorf("decoding certificate Secret: certificate %d of %s (%q) is not a CA", i+1, KeyCACerts, c.Subject.CommonName)
		}
	}
	serving, err := ParseKeyPair(data[KeyServingCert], data[KeyServingKey])
	if err != nil {
		return nil, fmt.Errorf("decoding certificate Secret: %s and %s: %w", KeyServingCert, KeyServingKey, err)
	}
	since, err := time.Parse(time.RFC3339, annotations[AnnotationCASince])
	if err != nil {
		since = ca.Cert.NotBefore
	}
	return &Bundle{CA: ca, OldCAs: cas[1:], Serving: serving, CASince: since}, nil
}

// Policy says which certificates the Secret must hold. The zero value of each duration
// means its default.
type Policy struct {
	// Hosts are the DNS names and IP addresses the serving certificate must cover; the
	// first is its common name. Usually ServiceHosts.
	Hosts []string
	// CAName is the CA's common name; "" is "detour-ca".
	CAName string
	// CALifetime, ServingLifetime and CAPropagation default to DefaultCALifetime,
	// DefaultServingLifetime and DefaultCAPropagation. Tests set them to seconds.
	CALifetime      time.Duration
	ServingLifetime time.Duration
	CAPropagation   time.Duration
}

func (p Policy) withDefaults() Policy {
	if p.CAName == "" {
		p.CAName = "detour-ca"
	}
	if p.CALifetime == 0 {
		p.CALifetime = DefaultCALifetime
	}
	if p.ServingLifetime == 0 {
		p.ServingLifetime = DefaultServingLifetime
	}
	if p.CAPropagation == 0 {
		p.CAPropagation = DefaultCAPropagation
	}
	return p
}

// Validate reports a Policy that could not keep a valid certificate.
func (p Policy) Validate() error {
	p = p.withDefaults()
	var errs []error
	if len(p.Hosts) == 0 {
		errs = append(errs, errors.New("no host names for the serving certificate"))
	}
	for _, h := range p.Hosts {
		if h == "" || (net.ParseIP(h) == nil && !validDNSName(h)) {
			errs = append(errs, fmt.Errorf("host %q is neither a DNS name nor an IP address", h))
		}
	}
	if p.CALifetime < 0 || p.ServingLifetime < 0 || p.CAPropagation < 0 {
		errs = append(errs, errors.New("lifetimes and the CA propagation delay must be positive"))
	}
	// After a CA renewal (at 2/3 of its life) the old CA must outlive the propagation delay,
	// or the serving certificate it signed would expire before it may be replaced.
	if p.CAPropagation >= p.CALifetime/renewDenominator {
		errs = append(errs, fmt.Errorf("CA propagation delay %v must be under a third of the CA lifetime %v", p.CAPropagation, p.CALifetime))
	}
	// A serving renewal that falls due during the propagation delay waits for its end.
	if p.CAPropagation >= p.ServingLifetime/renewDenominator {
		errs = append(errs, fmt.Errorf("CA propagation delay %v must be under a third of the serving lifetime %v", p.CAPropagation, p.ServingLifetime))
	}
	if p.ServingLifetime > p.CALifetime {
		errs = append(errs, fmt.Errorf("serving lifetime %v exceeds the CA lifetime %v", p.ServingLifetime, p.CALifetime))
	}
	return errors.Join(errs...)
}

func validDNSName(s string) bool {
	if len(s) > 253 {
		return false
	}
	for label := range strings.SplitSeq(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	return true
}

// Plan decides what the Secret must hold at now, given what it holds (cur; nil when it
// holds nothing usable). It returns cur itself and no reasons when nothing is to change;
// otherwise a new Bundle and why, one reason per change, for the log. New keys are random,
// everything else follows from the arguments.
func (p Policy) Plan(cur *Bundle, now time.Time) (next *Bundle, reasons []string, err error) {
	p = p.withDefaults()
	if err := p.Validate(); err != nil {
		return nil, nil, err
	}
	next = &Bundle{}
	if cur != nil {
		*next = *cur
		next.OldCAs = slices.Clone(cur.OldCAs)
	}

	// The signing CA.
	switch {
	case cur == nil || cur.CA == nil:
		reasons = append(reasons, "no CA")
	case !validAt(cur.CA.Cert, now):
		reasons = append(reasons, fmt.Sprintf("CA not valid now (%s to %s)", stamp(cur.CA.Cert.NotBefore), stamp(cur.CA.Cert.NotAfter)))
	case !now.Before(RenewAt(cur.CA.Cert)):
		reasons = append(reasons, fmt.Sprintf("CA due for renewal since %s", stamp(RenewAt(cur.CA.Cert))))
	}
	if len(reasons) > 0 {
		ca, err := NewCA(p.CAName, now, p.CALifetime)
		if err != nil {
			return nil, nil, err
		}
		if cur != nil && cur.CA != nil {
			next.OldCAs = append([]*x509.Certificate{cur.CA.Cert}, next.OldCAs...)
		}
		next.CA, next.CASince = ca, now
	}
	// Old CAs leave the caBundle when they expire.
	kept := slices.DeleteFunc(slices.Clone(next.OldCAs), func(c *x509.Certificate) bool { return !now.Before(c.NotAfter) })
	if len(kept) != len(next.OldCAs) {
		reasons = append(reasons, fmt.Sprintf("%d expired CA(s) removed from the bundle", len(next.OldCAs)-len(kept)))
		next.OldCAs = kept
	}

	// The serving certificate.
	if why := p.servingProblem(next, now); why != "" {
		reasons = append(reasons, why)
		if next.Serving, err = NewServing(next.CA, p.Hosts, now, p.ServingLifetime); err != nil {
			return nil, nil, err
		}
	}
	if len(reasons) == 0 {
		return cur, nil, nil
	}
	return next, reasons, nil
}

// servingProblem says why b's serving certificate must be replaced at now, or "".
func (p Policy) servingProblem(b *Bundle, now time.Time) string {
	s := b.Serving
	switch {
	case s == nil:
		return "no serving certificate"
	case !validAt(s.Cert, now):
		return fmt.Sprintf("serving certificate not valid now (%s to %s)", stamp(s.Cert.NotBefore), stamp(s.Cert.NotAfter))
	case !Covers(s.Cert, p.Hosts):
		return fmt.Sprintf("serving certificate does not cover all of %v", p.Hosts)
	case !slices.ContainsFunc(b.trusted(), func(ca *x509.Certificate) bool { return s.Cert.CheckSignatureFrom(ca) == nil }):
		return "serving certificate not signed by a trusted CA"
	case now.Before(b.CASince.Add(p.CAPropagation)):
		// The CA is new and not every apiserver may trust it yet: a renewal that can wait
		// (the certificate is still valid for a third of its life) waits.
		return ""
	case !now.Before(RenewAt(s.Cert)):
		return fmt.Sprintf("serving certificate due for renewal since %s", stamp(RenewAt(s.Cert)))
	case s.Cert.CheckSignatureFrom(b.CA.Cert) != nil:
		return "serving certificate signed by the previous CA"
	}
	return ""
}

// NextCheck is the earliest time at which Plan could change b: a renewal point, an expiry,
// or the end of a CA propagation delay.
func (p Policy) NextCheck(b *Bundle) time.Time {
	p = p.withDefaults()
	t := RenewAt(b.CA.Cert)
	t = earlier(t, RenewAt(b.Serving.Cert))
	for _, c := range b.OldCAs {
		t = earlier(t, c.NotAfter)
	}
	if b.Serving.Cert.CheckSignatureFrom(b.CA.Cert) != nil {
		t = earlier(t, b.CASince.Add(p.CAPropagation))
	}
	return t
}

func earlier(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func validAt(c *x509.Certificate, now time.Time) bool {
	return !now.Before(c.NotBefore) && now.Before(c.NotAfter)
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }
