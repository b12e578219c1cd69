package webhook

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"

	"github.com/detourhq/detour/internal/admission"
	"github.com/detourhq/detour/internal/config"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// client-go's shared HTTP/2 connection to the apiserver of
		// TestWatchConfigMapWithARealAPIServer, kept for reuse by its transport
		// cache; nothing else in these tests uses golang.org/x/net/http2.
		goleak.IgnoreAnyFunction("golang.org/x/net/http2.(*ClientConn).readLoop"),
	)
}

// podReview is a recorded AdmissionReview of a Pod the default config
// rewrites.
func podReview(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile("../admission/testdata/create-v1.json")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// defaultStore is a Store holding the embedded default config.
func defaultStore(t testing.TB, m *Metrics) *Store {
	t.Helper()
	s := NewStore(StoreOptions{OwnNamespace: "detour-system", Metrics: m})
	if err := s.ApplyConfig(config.Default()); err != nil {
		t.Fatal(err)
	}
	return s
}

// post sends body to h as an admission request would come.
func post(h http.Handler, contentType string, body []byte) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodPost, "/mutate", bytes.NewReader(body))
	if contentType != "" {
		r.Header.Set("Content-Type", contentType)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestHandlerAnswersAnAdmissionReview(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg, nil)
	h := NewHandler(defaultStore(t, m), m, nil)
	body := podReview(t)
	w := post(h, "application/json; charset=utf-8", body)
	if w.Code != http.StatusOK || w.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("status %d, Content-Type %q, body %s; want 200 application/json", w.Code, w.Header().Get("Content-Type"), w.Body)
	}
	want, err := admission.Review(context.Background(), body, defaultStore(t, nil).Load().Policy)
	if err != nil {
		t.Fatal(err)
	}
	if w.Body.String() != string(want.Response) {
		t.Errorf("body\n%s\nwant admission.Review's\n%s", w.Body, want.Response)
	}
	if got := testutil.ToFloat64(m.requests.WithLabelValues("CREATE", "patched")); got != 1 {
		t.Errorf("detour_admission_requests_total{CREATE,patched} = %v, want 1", got)
	}
	if got := testutil.ToFloat64(m.rewritten.WithLabelValues("docker.io")); got != 1 {
		t.Errorf("detour_images_rewritten_total{docker.io} = %v, want 1", got)
	}
}

func TestHandlerRefusesMalformedRequests(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg, nil)
	h := NewHandler(defaultStore(t, m), m, nil)
	big := bytes.Repeat([]byte(" "), 4<<20)
	copy(big, `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"x"}}`)
	for _, tc := range []struct {
		name        string
		method      string
		contentType string
		body        []byte
		code        int
		want        string // substring of the answer
	}{
		{"a body that is not JSON", "", "application/json", []byte("not json"), 400, "the body is not JSON: invalid character 'o' in literal null"},
		{"an empty object", "", "application/json", []byte("{}"), 400, `kind is "", want AdmissionReview`},
		{"no request", "", "application/json", []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`), 400, "the AdmissionReview has no request"},
		{"the wrong kind", "", "application/json", []byte(`{"apiVersion":"v1","kind":"Pod","request":{"uid":"x"}}`), 400, `kind is "Pod", want AdmissionReview`},
		{"an empty body", "", "application/json", nil, 400, "the body is empty"},
		{"a 4 MiB body", "", "application/json", big, 400, "over the 3145728-byte (3 MiB) limit"},
		{"the wrong content type", "", "text/plain", podReview(t), 400, `Content-Type must be application/json, got "text/plain"`},
		{"no content type", "", "", podReview(t), 400, `Content-Type must be application/json, got ""`},
		{"YAML", "", "application/yaml", podReview(t), 400, "Content-Type must be application/json"},
		{"a GET", http.MethodGet, "application/json", nil, 405, "only POST is allowed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			method := tc.method
			if method == "" {
				method = http.MethodPost
			}
			r := httptest.NewRequest(method, "/mutate", bytes.NewReader(tc.body))
			if tc.contentType != "" {
				r.Header.Set("Content-Type", tc.contentType)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != tc.code || !strings.Contains(w.Body.String(), tc.want) {
				t.Errorf("status %d, body %q; want %d containing %q", w.Code, w.Body, tc.code, tc.want)
			}
		})
	}
	t.Run("a body over 3 MiB without a Content-Length", func(t *testing.T) {
		t.Parallel()
		r := httptest.NewRequest(http.MethodPost, "/mutate", struct{ *bytes.Reader }{bytes.NewReader(big)})
		r.ContentLength = -1 // chunked: only reading finds out
		r.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != 400 || !strings.Contains(w.Body.String(), "over the 3145728-byte (3 MiB) limit") {
			t.Errorf("status %d, body %q; want 400 about the limit", w.Code, w.Body)
		}
	})
}

func TestHandlerRecoversFromPanics(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg, nil)
	store := defaultStore(t, m)
	// A policy without rules is a programming error that panics in Review.
	broken := *store.Load()
	broken.Policy = &admission.Policy{Enabled: true, Namespaces: config.Default().Namespaces}
	store.cur.Store(&broken)
	w := post(NewHandler(store, m, nil), "application/json", podReview(t))
	if w.Code != http.StatusInternalServerError || !strings.Contains(w.Body.String(), "internal error") {
		t.Errorf("status %d, body %q; want 500 internal error", w.Code, w.Body)
	}
	if got := testutil.ToFloat64(m.requests.WithLabelValues("unknown", resultError)); got != 1 {
		t.Errorf("detour_admission_requests_total{unknown,error} = %v, want 1", got)
	}
}

// FuzzHandler: any body, any content type, the handler answers 200 or 400 —
// never a recovered panic (500).
func FuzzHandler(f *testing.F) {
	f.Add(podReview(f), "application/json")
	for _, name := range []string{"update-changed-image", "ephemeral-containers", "reinvocation", "not-a-pod", "invalid-image"} {
		b, err := os.ReadFile("../admission/testdata/" + name + ".json")
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, "application/json")
	}
	f.Add([]byte("{}"), "application/json; charset=utf-8")
	f.Add([]byte(`{"kind":"AdmissionReview"}`), "text/plain")
	h := NewHandler(defaultStore(f, nil), nil, nil)
	f.Fuzz(func(t *testing.T, body []byte, contentType string) {
		w := post(h, contentType, body)
		if w.Code != http.StatusOK && w.Code != http.StatusBadRequest {
			t.Fatalf("status %d, body %q", w.Code, w.Body)
		}
		if w.Code == http.StatusBadRequest && w.Body.Len() < 10 {
			t.Fatalf("400 with no clear message: %q", w.Body)
		}
	})
}

// TestConfigSwapsDuringAdmissions swaps two configs 1,000 times while
// admissions run, under -race: every answer must be exactly the answer of one
// config or the other.
func TestConfigSwapsDuringAdmissions(t *testing.T) {
	t.Parallel()
	configs := [][]byte{
		[]byte("presets: []\nmirrors:\n  - from: \"*\"\n    to: old.mirror.test/{registry}\n"),
		[]byte("presets: []\nmirrors:\n  - from: \"*\"\n    to: new.mirror.test/{registry}\n"),
	}
	body := podReview(t)
	var want []string
	for _, c := range configs {
		s := NewStore(StoreOptions{})
		if err := s.Apply(c, "config.yaml"); err != nil {
			t.Fatal(err)
		}
		res, err := admission.Review(context.Background(), body, s.Load().Policy)
		if err != nil || res.Outcome != admission.Patched {
			t.Fatalf("Review under %s: %v, %v", c, err, res.Outcome)
		}
		want = append(want, string(res.Response))
	}

	store := NewStore(StoreOptions{})
	if err := store.Apply(configs[0], "config.yaml"); err != nil {
		t.Fatal(err)
	}
	h := NewHandler(store, nil, nil)
	const swaps = 1000
	done := make(chan struct{})
	var seen [2]int
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			var local [2]int
			defer func() {
				mu.Lock()
				seen[0] += local[0]
				seen[1] += local[1]
				mu.Unlock()
			}()
			for {
				select {
				case <-done:
					return
				default:
				}
				w := post(h, "application/json", body)
				switch got := w.Body.String(); {
				case w.Code != http.StatusOK:
					t.Errorf("status %d: %s", w.Code, got)
					return
				case got == want[0]:
					local[0]++
				case got == want[1]:
					local[1]++
				default:
					t.Errorf("an answer of neither config:\n%s", got)
					return
				}
			}
		})
	}
	for i := 1; i <= swaps; i++ {
		if err := store.Apply(configs[i%2], "config.yaml"); err != nil {
			t.Fatalf("swap %d: %v", i, err)
		}
	}
	close(done)
	wg.Wait()
	if g := store.Load().Generation; g != swaps+1 {
		t.Errorf("generation %d after %d swaps, want %d", g, swaps, swaps+1)
	}
	t.Logf("answers: %d under the first config, %d under the second", seen[0], seen[1])
}

// Every answer carries its Content-Length, whether the handler sets it (a
// large answer) or leaves it to net/http (one that fits its 2 KiB buffer),
// so a connection is never delimited by closing it.
func TestAnswersCarryTheirLength(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(NewHandler(defaultStore(t, nil), nil, nil))
	defer srv.Close()
	many := strings.Builder{}
	for i := range 40 {
		if i > 0 {
			many.WriteString(",")
		}
		fmt.Fprintf(&many, `{"name":"c%d","image":"nginx:1.%d"}`, i, i)
	}
	large := `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","kind":{"group":"","version":"v1","kind":"Pod"},` +
		`"resource":{"group":"","version":"v1","resource":"pods"},"namespace":"default","operation":"CREATE",` +
		`"object":{"metadata":{"name":"p"},"spec":{"containers":[` + many.String() + `]}}}}`
	for _, tc := range []struct {
		name  string
		body  []byte
		large bool
	}{
		{"small", podReview(t), false},
		{"large", []byte(large), true},
	} {
		resp, err := srv.Client().Post(srv.URL, "application/json", bytes.NewReader(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"patch"`) {
			t.Fatalf("%s: %s %s", tc.name, resp.Status, body)
		}
		if (len(body) > smallAnswer) != tc.large {
			t.Fatalf("%s: the answer is %d bytes, the test wants it %s than %d", tc.name, len(body), map[bool]string{true: "larger", false: "smaller"}[tc.large], smallAnswer)
		}
		if resp.ContentLength != int64(len(body)) || len(resp.TransferEncoding) != 0 {
			t.Errorf("%s: Content-Length %d, Transfer-Encoding %v for a %d-byte answer", tc.name, resp.ContentLength, resp.TransferEncoding, len(body))
		}
	}
}
