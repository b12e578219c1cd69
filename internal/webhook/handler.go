package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/detourhq/detour/internal/admission"
	"github.com/detourhq/detour/internal/rules"
)

// MaxBodyBytes caps an admission request body. The apiserver never sends
// objects over its own 3 MiB request limit (etcd's default value size is
// 1.5 MiB), so anything larger is not from it; SPEC §4 answers it with 400.
const MaxBodyBytes = 3 << 20

// bodyBufferSize is what a pooled body buffer starts with: a typical Pod's
// AdmissionReview is 3–10 KB, so most requests never grow one.
const bodyBufferSize = 16 << 10

// Handler answers admission requests on POST: it checks the HTTP side
// (method, content type, size), hands the body to admission.Review under the
// config in use, and writes the answer. It never panics out: a panic is
// answered 500 and logged.
type Handler struct {
	store   *Store
	metrics *Metrics
	log     *slog.Logger
	bufs    sync.Pool // *bytes.Buffer
	scratch sync.Pool // *scratch
	// genLog is log with the config generation in use already attached:
	// formatted once per config rather than once per line.
	genLog atomic.Pointer[genLogger]
}

type genLogger struct {
	generation uint64
	log        *slog.Logger
}

// scratch is what one request builds its answer and log line in, besides
// the body buffer; pooled, like that buffer, because under load the garbage
// collector's cycles cost more than the review itself.
type scratch struct {
	resp    []byte
	changes logChanges
}

// jsonContentType is the Content-Type of every answer, set without the
// allocation Header.Set makes. net/http never changes a header's values.
var jsonContentType = []string{"application/json"}

var _ http.Handler = (*Handler)(nil)

// NewHandler makes the /mutate handler. metrics may be nil.
func NewHandler(store *Store, metrics *Metrics, log *slog.Logger) *Handler {
	h := &Handler{store: store, metrics: metrics, log: orDiscard(log)}
	h.bufs.New = func() any { return bytes.NewBuffer(make([]byte, 0, bodyBufferSize)) }
	h.scratch.New = func() any { return &scratch{resp: make([]byte, 0, 4096)} }
	return h
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	op := "unknown"
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v) // the server's own signal to drop the connection
			}
			h.log.Error("panic answering an admission request", slog.Any("panic", v), slog.String("remote", r.RemoteAddr))
			h.count(op, resultError, start)
			http.Error(w, "internal error in detour; see its log", http.StatusInternalServerError)
		}
	}()

	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		h.fail(w, op, start, http.StatusMethodNotAllowed, "only POST is allowed, got "+r.Method)
		return
	}
	if ct := r.Header.Get("Content-Type"); !isJSON(ct) {
		h.fail(w, op, start, http.StatusBadRequest, fmt.Sprintf("Content-Type must be application/json, got %q", ct))
		return
	}
	if r.ContentLength > MaxBodyBytes {
		h.fail(w, op, start, http.StatusBadRequest, fmt.Sprintf("request body of %d bytes is over the %d-byte (3 MiB) limit", r.ContentLength, MaxBodyBytes))
		return
	}
	buf := h.bufs.Get().(*bytes.Buffer)
	defer h.putBuffer(buf)
	buf.Reset()
	if _, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, MaxBodyBytes)); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			h.fail(w, op, start, http.StatusBadRequest, fmt.Sprintf("request body is over the %d-byte (3 MiB) limit", MaxBodyBytes))
		} else {
			h.fail(w, op, start, http.StatusBadRequest, "reading the request body: "+err.Error())
		}
		return
	}

	snap := h.store.Load()
	if snap == nil {
		h.fail(w, op, start, http.StatusServiceUnavailable, "no config loaded yet")
		return
	}
	sc := h.scratch.Get().(*scratch)
	defer h.putScratch(sc)
	res, err := admission.AppendReview(r.Context(), sc.resp[:0], buf.Bytes(), snap.Policy)
	if err != nil {
		h.fail(w, op, start, http.StatusBadRequest, err.Error())
		return
	}
	sc.resp = res.Response[:0]
	op = operationLabel(res.Operation)

	hdr := w.Header()
	hdr["Content-Type"] = jsonContentType
	if len(res.Response) > smallAnswer {
		hdr["Content-Length"] = []string{strconv.Itoa(len(res.Response))}
	} // else net/http counts it: the answer is written whole when the handler returns
	_, _ = w.Write(res.Response)

	h.count(op, res.Outcome.String(), start)
	if h.metrics != nil {
		for _, c := range res.Changes {
			rule := c.Rule
			if c.Reason == rules.Escaped {
				rule = "escape"
			}
			h.metrics.ruleRewritten(rule).Inc()
		}
	}
	h.logResult(r.Context(), &res, snap.Generation, &sc.changes)
}

// smallAnswer is the size up to which net/http, which buffers 2 KiB of a
// response before it must decide, sets Content-Length itself.
const smallAnswer = 2000

func (h *Handler) putScratch(sc *scratch) {
	if cap(sc.resp) > 64<<10 {
		return // one huge answer is not kept
	}
	sc.changes.reset()
	h.scratch.Put(sc)
}

// logger is the handler's logger with config_generation attached.
func (h *Handler) logger(generation uint64) *slog.Logger {
	if g := h.genLog.Load(); g != nil && g.generation == generation {
		return g.log
	}
	g := &genLogger{generation: generation, log: h.log.With(slog.Uint64("config_generation", generation))}
	h.genLog.Store(g)
	return g.log
}

// putBuffer returns a buffer to the pool unless one huge request grew it.
func (h *Handler) putBuffer(b *bytes.Buffer) {
	if b.Cap() <= 4*bodyBufferSize {
		h.bufs.Put(b)
	}
}

// isJSON reports whether a Content-Type is application/json, parameters
// such as charset allowed.
func isJSON(ct string) bool {
	if ct == "application/json" {
		return true // the apiserver's, without parsing
	}
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && mt == "application/json"
}

// fail answers an error in plain text, counts it and logs it at debug level:
// bad requests come from clients, not from detour.
func (h *Handler) fail(w http.ResponseWriter, op string, start time.Time, code int, msg string) {
	http.Error(w, msg, code)
	result := resultBadRequest
	if code >= 500 {
		result = resultError
	}
	h.count(op, result, start)
	h.log.Debug("admission request refused", slog.Int("status", code), slog.String("error", msg))
}

func (h *Handler) count(op, result string, start time.Time) {
	if h.metrics == nil {
		return
	}
	h.metrics.requestAnswered(op, result).Inc()
	h.metrics.duration.Observe(time.Since(start).Seconds())
}

// logResult writes one info line per Pod whose images changed, a warning
// line when the answer carries warnings, and a debug line otherwise.
func (h *Handler) logResult(ctx context.Context, res *admission.Result, generation uint64, changes *logChanges) {
	level, msg := slog.LevelDebug, "pod admitted unchanged"
	switch {
	case res.Outcome == admission.Patched:
		level, msg = slog.LevelInfo, "pod images rewritten"
	case len(res.Warnings) > 0:
		level, msg = slog.LevelWarn, "pod admitted unchanged, with warnings"
	}
	log := h.logger(generation)
	if !log.Enabled(ctx, level) {
		return
	}
	// Five attributes in the common case: a slog.Record holds five without
	// allocating.
	attrs := make([]slog.Attr, 0, 10)
	attrs = append(attrs,
		slog.String("namespace", res.Namespace),
		slog.String("operation", res.Operation),
		slog.String("uid", res.UID),
	)
	if res.Name != "" {
		attrs = append(attrs, slog.String("name", res.Name))
	} else {
		attrs = append(attrs, slog.String("generateName", res.GenerateName))
	}
	if res.SubResource != "" {
		attrs = append(attrs, slog.String("subresource", res.SubResource))
	}
	if res.DryRun {
		attrs = append(attrs, slog.Bool("dryRun", true))
	}
	if len(res.Changes) > 0 {
		changes.list = res.Changes
		attrs = append(attrs, slog.Any("changes", changes))
	}
	if len(res.Warnings) > 0 {
		attrs = append(attrs, slog.Any("warnings", res.Warnings))
	}
	if res.Outcome == admission.Skipped {
		attrs = append(attrs, slog.String("skip", res.Skip))
	}
	// The record goes to the handler directly: Logger.LogAttrs would also
	// capture the caller's program counter, which only AddSource uses.
	r := slog.NewRecord(time.Now(), level, msg, 0)
	r.AddAttrs(attrs...)
	_ = log.Handler().Handle(ctx, r)
}

// logChanges logs changes as a group {"containers/web": "nginx -> mirror/nginx"},
// without the reflection slog.Any would need for a slice of structs, and
// with all its strings cut from one: it is resolved while the line is
// formatted (slog's JSONHandler is synchronous) and reused by later requests.
type logChanges struct {
	list  []admission.Change
	attrs []slog.Attr
	text  []byte
}

func (c *logChanges) LogValue() slog.Value {
	text := c.text[:0]
	for _, ch := range c.list {
		text = append(text, ch.From...)
		text = append(text, " -> "...)
		text = append(text, ch.To...)
		if ch.Choice != "" {
			text = append(text, " ("...)
			text = append(text, ch.Choice...)
			text = append(text, ')')
		}
	}
	c.text = text
	all := string(text)
	attrs := c.attrs[:0]
	off := 0
	for _, ch := range c.list {
		n := len(ch.From) + len(" -> ") + len(ch.To)
		if ch.Choice != "" {
			n += len(" ()") + len(ch.Choice)
		}
		attrs = append(attrs, slog.String(ch.Field, all[off:off+n]))
		off += n
	}
	c.attrs = attrs
	return slog.GroupValue(attrs...)
}

func (c *logChanges) reset() {
	c.list = nil
	clear(c.attrs)
	c.attrs = c.attrs[:0]
}
