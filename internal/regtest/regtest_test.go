package regtest_test

import (
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/detourhq/detour/internal/regtest"
)

func get(t *testing.T, client *http.Client, url, user, pass string) (int, []byte, error) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

func TestPlainRegistryAnswersAndStops(t *testing.T) {
	t.Parallel()
	r := regtest.Start(t, regtest.Options{})
	if !strings.HasPrefix(r.URL, "http://127.0.0.1:") || r.URL != "http://"+r.Host {
		t.Fatalf("URL %q, Host %q", r.URL, r.Host)
	}
	client := &http.Client{Transport: r.Transport(), Timeout: 5 * time.Second}
	code, _, err := get(t, client, r.URL+"/v2/", "", "")
	if err != nil || code != http.StatusOK {
		t.Fatalf("GET /v2/: %d, %v", code, err)
	}
	r.Stop()
	r.Stop() // twice is fine
	if _, _, err := get(t, client, r.URL+"/v2/", "", ""); err == nil {
		t.Fatal("the registry still answers after Stop")
	}
	if !strings.Contains(r.Log(), "listening on 127.0.0.1:") {
		t.Errorf("log lacks the listen line:\n%s", r.Log())
	}
}

func TestTLSRegistryWithAuthNeedsTheCAAndThePassword(t *testing.T) {
	t.Parallel()
	r := regtest.Start(t, regtest.Options{TLS: true, User: "alice", Password: "s3cret"})
	if !strings.HasPrefix(r.URL, "https://") || len(r.CAPEM) == 0 {
		t.Fatalf("URL %q, CA %d bytes", r.URL, len(r.CAPEM))
	}
	// Without the CA the certificate is refused.
	if _, _, err := get(t, &http.Client{Timeout: 5 * time.Second}, r.URL+"/v2/", "", ""); err == nil {
		t.Fatal("an untrusted certificate was accepted")
	}
	client := &http.Client{Transport: r.Transport(), Timeout: 5 * time.Second}
	for _, c := range []struct {
		user, pass string
		want       int
	}{
		{"", "", http.StatusUnauthorized},
		{"alice", "wrong", http.StatusUnauthorized},
		{"alice", "s3cret", http.StatusOK},
	} {
		code, _, err := get(t, client, r.URL+"/v2/", c.user, c.pass)
		if err != nil || code != c.want {
			t.Errorf("GET /v2/ as %q/%q: %d, %v; want %d", c.user, c.pass, code, err, c.want)
		}
	}
	dir := regtest.DockerConfig(t, r)
	b, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil || !strings.Contains(string(b), `"`+r.Host+`"`) || !strings.Contains(string(b), "YWxpY2U6czNjcmV0") {
		t.Errorf("docker config %s: %v", b, err)
	}
}

func TestPullThroughCacheStarts(t *testing.T) {
	t.Parallel()
	up := regtest.Start(t, regtest.Options{})
	cache := regtest.Start(t, regtest.Options{ProxyRemote: up.URL})
	code, _, err := get(t, &http.Client{Timeout: 5 * time.Second}, cache.URL+"/v2/", "", "")
	if err != nil || code != http.StatusOK {
		t.Fatalf("GET /v2/ on the cache: %d, %v", code, err)
	}
	if !strings.Contains(cache.Log(), up.URL) {
		t.Errorf("the cache's log does not mention its upstream %s:\n%s", up.URL, cache.Log())
	}
}

func TestPullThroughCacheOfATLSRegistryTrustsItsCA(t *testing.T) {
	t.Parallel()
	up := regtest.Start(t, regtest.Options{TLS: true})
	cache := regtest.Start(t, regtest.Options{ProxyRemote: up.URL, ProxyCAPEM: up.CAPEM})
	// A catalog answer means the cache reached its upstream over TLS.
	code, body, err := get(t, &http.Client{Timeout: 5 * time.Second}, cache.URL+"/v2/nothing/tags/list", "", "")
	if err != nil || code != http.StatusNotFound || !strings.Contains(string(body), "NAME_UNKNOWN") {
		t.Fatalf("tags of a missing repository through the cache: %d %s %v\n%s", code, body, err, cache.Log())
	}
	if strings.Contains(cache.Log(), "certificate") {
		t.Errorf("the cache did not trust its upstream:\n%s", cache.Log())
	}
}

func TestFaultProxyInjectsEachKindAndStopsAtMax(t *testing.T) {
	t.Parallel()
	r := regtest.Start(t, regtest.Options{})
	// The catalog has a body; GET it through proxies that always inject one
	// kind, at most 2 times.
	for _, kind := range regtest.AllFaults {
		p := regtest.NewFaultProxy(t, r.URL, regtest.Faults{Seed: 1, Rate: 1, MaxFaults: 2, Kinds: []regtest.Fault{kind}, RetryAfter: 3 * time.Second})
		client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
		for i := range 3 {
			resp, err := client.Get(p.URL + "/v2/_catalog")
			if i == 2 { // faults exhausted: forwarded
				if err != nil || resp.StatusCode != http.StatusOK {
					t.Fatalf("%s: third request: %v %v", kind, resp, err)
				}
				resp.Body.Close()
				continue
			}
			switch kind {
			case regtest.TooManyRequests:
				if err != nil || resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "3" {
					t.Fatalf("429: %v %v", resp, err)
				}
				resp.Body.Close()
			case regtest.Unavailable:
				if err != nil || resp.StatusCode != 503 {
					t.Fatalf("503: %v %v", resp, err)
				}
				resp.Body.Close()
			case regtest.Reset:
				if err == nil || !errors.Is(err, syscall.ECONNRESET) && !strings.Contains(err.Error(), "EOF") {
					t.Fatalf("reset: got %v %v", resp, err)
				}
			case regtest.Truncate:
				if err != nil {
					t.Fatalf("truncate: headers should arrive: %v", err)
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err == nil || int64(len(b)) >= resp.ContentLength {
					t.Fatalf("truncate: read %d of %d bytes, err %v", len(b), resp.ContentLength, err)
				}
			}
		}
		if got := p.Injected()[kind]; got != 2 {
			t.Errorf("%s: injected %d, want 2", kind, got)
		}
		if n := len(p.Requests()); n != 3 {
			t.Errorf("%s: recorded %d requests, want 3", kind, n)
		}
	}
}

func TestFaultProxyRateZeroForwardsEverything(t *testing.T) {
	t.Parallel()
	r := regtest.Start(t, regtest.Options{TLS: true, User: "u", Password: "p"})
	p := regtest.NewFaultProxy(t, r.URL, regtest.Faults{Transport: r.Transport()})
	code, _, err := get(t, &http.Client{Timeout: 5 * time.Second}, p.URL+"/v2/", "u", "p")
	if err != nil || code != http.StatusOK {
		t.Fatalf("GET /v2/ through the proxy: %d, %v", code, err)
	}
	reqs := p.Requests()
	if len(reqs) != 1 || reqs[0].Path != "/v2/" || reqs[0].Status != 200 || reqs[0].Fault != "" {
		t.Errorf("requests %+v", reqs)
	}
}
