package certs

import (
	"bytes"
	"crypto/x509"
	"slices"
	"strings"
	"testing"
	"time"
)

// short is a policy with lifetimes of seconds, as the e2e rotation test uses.
var short = Policy{Hosts: hosts, CALifetime: 90 * time.Second, ServingLifetime: 21 * time.Second, CAPropagation: 5 * time.Second}

func plan(t *testing.T, p Policy, cur *Bundle, now time.Time) (*Bundle, []string) {
	t.Helper()
	next, reasons, err := p.Plan(cur, now)
	if err != nil {
		t.Fatalf("Plan at %v: %v", now, err)
	}
	return next, reasons
}

// walk runs Plan every second from from to to, both included, as a replica's loop would.
func walk(t *testing.T, p Policy, b *Bundle, from, to time.Time) *Bundle {
	t.Helper()
	for at := from; !at.After(to); at = at.Add(time.Second) {
		b, _ = plan(t, p, b, at)
	}
	return b
}

func sameCert(a, b *x509.Certificate) bool { return bytes.Equal(a.Raw, b.Raw) }

func signedBy(s, ca *x509.Certificate) bool { return s.CheckSignatureFrom(ca) == nil }

func TestPlanFromNothingMakesACAAndAServingCertificateItSigned(t *testing.T) {
	b, reasons := plan(t, Policy{Hosts: hosts}, nil, t0)
	if len(reasons) == 0 {
		t.Error("no reasons given for a change")
	}
	if !signedBy(b.Serving.Cert, b.CA.Cert) || !Covers(b.Serving.Cert, hosts) || len(b.OldCAs) != 0 {
		t.Errorf("serving certificate signed by its CA: %v, covers %q: %v, old CAs: %d",
			signedBy(b.Serving.Cert, b.CA.Cert), hosts, Covers(b.Serving.Cert, hosts), len(b.OldCAs))
	}
	if !b.CASince.Equal(t0) {
		t.Errorf("CASince = %v, want %v", b.CASince, t0)
	}
	if !bytes.Equal(b.CABundle(), b.CA.CertPEM) {
		t.Error("the caBundle is not exactly the CA")
	}
}

func TestPlanLeavesACurrentBundleAlone(t *testing.T) {
	b, _ := plan(t, Policy{Hosts: hosts}, nil, t0)
	for _, at := range []time.Duration{0, time.Hour, 200 * 24 * time.Hour} {
		next, reasons := plan(t, Policy{Hosts: hosts}, b, t0.Add(at))
		if next != b || len(reasons) != 0 {
			t.Errorf("at +%v: changed (%q), want the same bundle", at, reasons)
		}
	}
}

func TestPlanRenewsTheServingCertificateAtTwoThirdsAndKeepsTheCA(t *testing.T) {
	p := Policy{Hosts: hosts}
	b, _ := plan(t, p, nil, t0)
	due := RenewAt(b.Serving.Cert)
	if next, _ := plan(t, p, b, due.Add(-time.Second)); next != b {
		t.Fatal("renewed before the renewal point")
	}
	next, reasons := plan(t, p, b, due)
	if next == b || len(reasons) != 1 || !strings.Contains(reasons[0], "due for renewal") {
		t.Fatalf("at the renewal point: reasons %q, want one renewal", reasons)
	}
	if sameCert(next.Serving.Cert, b.Serving.Cert) {
		t.Error("the serving certificate did not change")
	}
	if !sameCert(next.CA.Cert, b.CA.Cert) || !bytes.Equal(next.CABundle(), b.CABundle()) {
		t.Error("the CA or the caBundle changed with a serving renewal")
	}
	if !signedBy(next.Serving.Cert, b.CA.Cert) {
		t.Error("the new serving certificate is not signed by the kept CA")
	}
}

func TestPlanReissuesWhenTheHostsAreNotCovered(t *testing.T) {
	b, _ := plan(t, Policy{Hosts: hosts}, nil, t0)
	more := append(slices.Clone(hosts), "127.0.0.1")
	next, reasons := plan(t, Policy{Hosts: more}, b, t0.Add(time.Minute))
	if len(reasons) != 1 || !Covers(next.Serving.Cert, more) || !sameCert(next.CA.Cert, b.CA.Cert) {
		t.Errorf("reasons %q, covers %q: %v; want a new serving certificate under the same CA", reasons, more, Covers(next.Serving.Cert, more))
	}
	// A replica asking for fewer names accepts the wider certificate instead of fighting.
	if again, reasons := plan(t, Policy{Hosts: hosts}, next, t0.Add(2*time.Minute)); again != next {
		t.Errorf("a certificate covering more hosts was replaced: %q", reasons)
	}
}

func TestPlanRenewsTheCAWithARolloverThatKeepsTheServedCertificateTrusted(t *testing.T) {
	p := short
	b, _ := plan(t, p, nil, t0)
	caDue := RenewAt(b.CA.Cert)
	before := walk(t, p, b, t0, caDue.Add(-time.Second))
	rolled, reasons := plan(t, p, before, caDue)
	if len(reasons) == 0 || !strings.Contains(strings.Join(reasons, ";"), "CA due") {
		t.Fatalf("at the CA's renewal point: reasons %q", reasons)
	}
	if sameCert(rolled.CA.Cert, before.CA.Cert) {
		t.Fatal("the CA did not change")
	}
	if len(rolled.OldCAs) != 1 || !sameCert(rolled.OldCAs[0], before.CA.Cert) {
		t.Fatal("the old CA is not kept behind the new one")
	}
	cas, err := ParseCertificates(rolled.CABundle())
	if err != nil || len(cas) != 2 || !sameCert(cas[0], rolled.CA.Cert) || !sameCert(cas[1], before.CA.Cert) {
		t.Fatalf("caBundle holds %d certificates (err %v), want the new CA then the old one", len(cas), err)
	}
	if !sameCert(rolled.Serving.Cert, before.Serving.Cert) {
		t.Error("the serving certificate was switched in the same step as the CA, before the new caBundle could propagate")
	}

	// Within the propagation delay nothing moves; right after it, the serving certificate
	// is reissued by the new CA while the old CA stays trusted.
	end := rolled.CASince.Add(p.CAPropagation)
	if next, reasons := plan(t, p, rolled, end.Add(-time.Second)); next != rolled {
		t.Errorf("changed during the propagation delay: %q", reasons)
	}
	if got := p.NextCheck(rolled); !got.Equal(end) {
		t.Errorf("NextCheck = %v, want the end of the propagation delay %v", got, end)
	}
	switched, reasons := plan(t, p, rolled, end)
	if len(reasons) != 1 || !strings.Contains(reasons[0], "previous CA") {
		t.Fatalf("after the propagation delay: reasons %q", reasons)
	}
	if !signedBy(switched.Serving.Cert, rolled.CA.Cert) || !bytes.Equal(switched.CABundle(), rolled.CABundle()) {
		t.Error("the new serving certificate is not signed by the new CA, or the caBundle changed with it")
	}

	// The old CA leaves the bundle when it expires, not before.
	gone := before.CA.Cert.NotAfter
	if got := p.NextCheck(switched); got.After(gone) {
		t.Errorf("NextCheck = %v, after the old CA's expiry %v", got, gone)
	}
	pruned, reasons := plan(t, p, &Bundle{CA: switched.CA, OldCAs: switched.OldCAs, Serving: switched.Serving, CASince: switched.CASince}, gone)
	if len(pruned.OldCAs) != 0 || !strings.Contains(strings.Join(reasons, ";"), "expired CA") {
		t.Errorf("at the old CA's expiry: %d old CAs, reasons %q", len(pruned.OldCAs), reasons)
	}
}

func TestPlanReplacesEverythingAfterTheCAExpired(t *testing.T) {
	p := Policy{Hosts: hosts}
	b, _ := plan(t, p, nil, t0)
	later := b.CA.Cert.NotAfter.Add(time.Hour) // a cluster switched off for ten years
	next, reasons := plan(t, p, b, later)
	if sameCert(next.CA.Cert, b.CA.Cert) || sameCert(next.Serving.Cert, b.Serving.Cert) || len(next.OldCAs) != 0 {
		t.Errorf("reasons %q: want a new CA, a new serving certificate and no expired CA kept", reasons)
	}
	if !signedBy(next.Serving.Cert, next.CA.Cert) {
		t.Error("the new serving certificate is not signed by the new CA")
	}
}

func TestPlanReplacesAServingCertificateNoTrustedCASigned(t *testing.T) {
	p := Policy{Hosts: hosts}
	b, _ := plan(t, p, nil, t0)
	stranger := mustServing(t, mustCA(t, t0, time.Hour*24), hosts, t0, time.Hour)
	b.Serving = stranger
	next, reasons := plan(t, p, b, t0.Add(time.Minute))
	if sameCert(next.Serving.Cert, stranger.Cert) || !signedBy(next.Serving.Cert, b.CA.Cert) {
		t.Errorf("reasons %q: the foreign serving certificate was kept", reasons)
	}
}

// TestPlanNeverServesACertificateTheApiserverCannotVerify simulates a replica running Plan
// every second through several CA lifetimes, and checks at every step that the certificate
// it would serve verifies against the caBundle it had published CAPropagation earlier: what
// a slow apiserver still uses. A rollover that switched the serving certificate with the CA
// would fail here.
func TestPlanNeverServesACertificateTheApiserverCannotVerify(t *testing.T) {
	p := short
	type published struct {
		at     time.Time
		bundle *x509.CertPool
	}
	var history []published
	var b *Bundle
	var caChanges, servingChanges int
	for at := t0; at.Before(t0.Add(4 * p.CALifetime)); at = at.Add(time.Second) {
		next, _ := plan(t, p, b, at)
		if b != nil && !sameCert(next.CA.Cert, b.CA.Cert) {
			caChanges++
		}
		if b != nil && !sameCert(next.Serving.Cert, b.Serving.Cert) {
			servingChanges++
		}
		b = next
		history = append(history, published{at, pool(b.trusted()...)})
		// The caBundle a slow apiserver holds: the latest one published at least
		// CAPropagation ago (or the first, during the first seconds).
		seen := history[0].bundle
		for _, h := range history {
			if !h.at.After(at.Add(-p.CAPropagation)) {
				seen = h.bundle
			}
		}
		if _, err := b.Serving.Cert.Verify(x509.VerifyOptions{
			DNSName:     hosts[0],
			Roots:       seen,
			CurrentTime: at,
			KeyUsages:   []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		}); err != nil && at.Sub(t0) > p.CAPropagation {
			t.Fatalf("at +%v: the served certificate does not verify against the caBundle of %v ago: %v", at.Sub(t0), p.CAPropagation, err)
		}
		if len(b.OldCAs) > 1 {
			t.Fatalf("at +%v: %d old CAs kept, want at most one with these lifetimes", at.Sub(t0), len(b.OldCAs))
		}
	}
	if caChanges < 3 || servingChanges < 3*caChanges {
		t.Errorf("%d CA and %d serving renewals in four CA lifetimes: the simulation did not exercise rotation", caChanges, servingChanges)
	}
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	p := short
	b, _ := plan(t, p, nil, t0)
	caDue := RenewAt(b.CA.Cert)
	b = walk(t, p, b, t0, caDue) // to the CA's renewal: an old CA in the bundle
	if len(b.OldCAs) != 1 {
		t.Fatalf("%d old CAs after the CA's renewal, want 1", len(b.OldCAs))
	}
	data, annotations := b.Encode()
	if annotations[AnnotationNotAfter] != b.Serving.Cert.NotAfter.Format(time.RFC3339) {
		t.Errorf("%s = %q, want the serving certificate's NotAfter %v", AnnotationNotAfter, annotations[AnnotationNotAfter], b.Serving.Cert.NotAfter)
	}
	got, err := Decode(data, annotations)
	if err != nil {
		t.Fatal(err)
	}
	if !sameCert(got.CA.Cert, b.CA.Cert) || !sameCert(got.Serving.Cert, b.Serving.Cert) || len(got.OldCAs) != 1 ||
		!sameCert(got.OldCAs[0], b.OldCAs[0]) || !got.CASince.Equal(b.CASince.Truncate(time.Second)) {
		t.Error("decoded bundle differs from the encoded one")
	}
	if next, reasons := plan(t, p, got, caDue); len(reasons) != 0 || next != got {
		t.Errorf("a decoded bundle is not current at the same instant: %q", reasons)
	}
}

func TestDecodeRejectsBrokenSecrets(t *testing.T) {
	b, _ := plan(t, Policy{Hosts: hosts}, nil, t0)
	other, _ := plan(t, Policy{Hosts: hosts}, nil, t0)
	good, annotations := b.Encode()
	for name, edit := range map[string]func(map[string][]byte){
		"no tls.crt":              func(d map[string][]byte) { delete(d, KeyServingCert) },
		"no ca.key":               func(d map[string][]byte) { delete(d, KeyCAKey) },
		"ca.key of another CA":    func(d map[string][]byte) { d[KeyCAKey] = other.CA.KeyPEM },
		"tls.key of another cert": func(d map[string][]byte) { d[KeyServingKey] = other.Serving.KeyPEM },
		"serving cert in ca.crt":  func(d map[string][]byte) { d[KeyCACerts] = append(slices.Clone(d[KeyCACerts]), b.Serving.CertPEM...) },
		"garbage ca.crt":          func(d map[string][]byte) { d[KeyCACerts] = []byte("not pem") },
		"two certificates in tls.crt": func(d map[string][]byte) {
			d[KeyServingCert] = append(slices.Clone(b.Serving.CertPEM), other.Serving.CertPEM...)
		},
	} {
		data := map[string][]byte{}
		for k, v := range good {
			data[k] = v
		}
		edit(data)
		if _, err := Decode(data, annotations); err == nil {
			t.Errorf("%s: decoded without error", name)
		}
	}
	delete(annotations, AnnotationCASince)
	got, err := Decode(good, annotations)
	if err != nil || !got.CASince.Equal(b.CA.Cert.NotBefore) {
		t.Errorf("without %s: CASince %v, err %v; want the CA's NotBefore", AnnotationCASince, got.CASince, err)
	}
}

func TestPolicyValidate(t *testing.T) {
	for name, tc := range map[string]struct {
		p    Policy
		want string // substring of the error; "" for none
	}{
		"defaults":                  {Policy{Hosts: hosts}, ""},
		"short":                     {short, ""},
		"IP host":                   {Policy{Hosts: []string{"127.0.0.1"}}, ""},
		"no hosts":                  {Policy{}, "no host names"},
		"upper-case host":           {Policy{Hosts: []string{"Detour.svc"}}, "neither"},
		"empty label":               {Policy{Hosts: []string{"detour..svc"}}, "neither"},
		"propagation too long":      {Policy{Hosts: hosts, CALifetime: time.Minute, CAPropagation: 20 * time.Second}, "third"},
		"negative serving lifetime": {Policy{Hosts: hosts, ServingLifetime: -time.Second}, "positive"},
		"propagation over a third of the serving lifetime": {Policy{Hosts: hosts, ServingLifetime: 2 * time.Minute, CAPropagation: time.Minute}, "serving lifetime"},
		"serving outlives CA":                              {Policy{Hosts: hosts, CALifetime: time.Hour, ServingLifetime: 2 * time.Hour}, "exceeds"},
	} {
		err := tc.p.Validate()
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: err = %v, want %q", name, err, tc.want)
		}
	}
}

func FuzzDecode(f *testing.F) {
	b, _, err := Policy{Hosts: hosts}.Plan(nil, t0)
	if err != nil {
		f.Fatal(err)
	}
	data, ann := b.Encode()
	f.Add(data[KeyServingCert], data[KeyServingKey], data[KeyCACerts], data[KeyCAKey], ann[AnnotationCASince])
	f.Add([]byte("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n"), []byte{}, []byte("x"), []byte{0}, "2026-01-01T00:00:00Z")
	f.Fuzz(func(t *testing.T, cert, key, cas, caKey []byte, since string) {
		got, err := Decode(map[string][]byte{KeyServingCert: cert, KeyServingKey: key, KeyCACerts: cas, KeyCAKey: caKey},
			map[string]string{AnnotationCASince: since})
		if err != nil {
			return
		}
		// Whatever decodes must be something Plan can work with and that encodes again.
		if _, _, err := (Policy{Hosts: hosts}).Plan(got, t0); err != nil {
			t.Fatalf("Plan on a decoded bundle: %v", err)
		}
		data, ann := got.Encode()
		if _, err := Decode(data, ann); err != nil {
			t.Fatalf("re-decoding what a decoded bundle encodes to: %v", err)
		}
	})
}
