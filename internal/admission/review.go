package admission

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"

	"github.com/detourhq/detour/internal/config"
	"github.com/detourhq/detour/internal/jsonstr"
	"github.com/detourhq/detour/internal/rules"
)

// Names detour gives to Kubernetes objects.
const (
	// OriginalImagesAnnotation records, on every Pod detour changed, what it
	// replaced: a JSON object string {"containers/NAME":"IMAGE",...} whose keys
	// are the list (containers, initContainers, ephemeralContainers), a slash
	// and the container name. Escaped images are recorded too: that is how a
	// reinvocation or a later UPDATE tells an image detour wrote from one a
	// user wrote, and leaves it alone.
	OriginalImagesAnnotation = "detour.dev/original-images"
	// MirrorChoiceAnnotation records, when availability checking chose the
	// mirror, which entry of the fallback chain it took and why, in the same
	// JSON object shape: {"containers/NAME":"mirror 2 of 3"}.
	MirrorChoiceAnnotation = "detour.dev/mirror-choice"
	// SkipLabel set to "true" on a Pod makes detour admit it unchanged.
	SkipLabel = "detour.dev/skip"
)

// The AdmissionReview versions detour answers; the response echoes the one
// of the request.
const (
	APIVersionV1      = "admission.k8s.io/v1"
	APIVersionV1beta1 = "admission.k8s.io/v1beta1"
)

// Policy is everything a review depends on besides the request. It is
// immutable once built and safe for concurrent use: a config reload builds a
// new Policy instead of changing one.
type Policy struct {
	// Enabled false admits every Pod unchanged.
	Enabled bool
	// Namespaces selects the namespaces whose Pods are rewritten.
	Namespaces config.Namespaces
	// OwnNamespace is the webhook's own namespace, always left alone so that
	// detour can never block its own Pods. "" means none.
	OwnNamespace string
	// Rules decides each image. Required.
	Rules *rules.Set
	// Check configures availability checking; it is used only when
	// Check.Enabled and Checker is not nil.
	Check config.Check
	// Checker answers availability checks; nil turns checking off.
	Checker Checker
}

// NewPolicy builds the Policy of a parsed config and its compiled rules.
func NewPolicy(cfg *config.Config, set *rules.Set, ownNamespace string, checker Checker) *Policy {
	return &Policy{
		Enabled:      cfg.Enabled,
		Namespaces:   cfg.Namespaces,
		OwnNamespace: ownNamespace,
		Rules:        set,
		Check:        cfg.Check,
		Checker:      checker,
	}
}

// Outcome classifies a review for metrics and logs.
type Outcome uint8

const (
	// Unchanged: the Pod was considered and nothing needed to change.
	Unchanged Outcome = iota
	// Patched: the response carries a patch.
	Patched
	// Skipped: the request was not considered (see Result.Skip).
	Skipped
)

func (o Outcome) String() string {
	switch o {
	case Unchanged:
		return "unchanged"
	case Patched:
		return "patched"
	case Skipped:
		return "skipped"
	}
	return "unknown"
}

// Why a request was admitted without being considered, in Result.Skip.
const (
	SkipNotPod       = "not-a-pod"     // another kind
	SkipOperation    = "operation"     // not CREATE or UPDATE
	SkipSubResource  = "subresource"   // a subresource other than ephemeralcontainers
	SkipNoObject     = "no-object"     // the request carries no object
	SkipDisabled     = "disabled"      // enabled: false
	SkipOwnNamespace = "own-namespace" // the webhook's own namespace
	SkipNamespace    = "namespace"     // outside include or inside exclude
	SkipLabelled     = "skip-label"    // labelled detour.dev/skip: "true"
)

// Result is the answer to one AdmissionReview and what the caller needs to
// count and log it. Review is silent; logging is the caller's business.
type Result struct {
	// Response is the AdmissionReview to send back, JSON.
	Response []byte
	// APIVersion and UID are the request's, echoed in Response.
	APIVersion string
	UID        string
	// Operation is the request's (CREATE, UPDATE, ...).
	Operation string
	// Outcome is what happened; Skip says why for Skipped.
	Outcome Outcome
	Skip    string
	// Namespace, Name and GenerateName identify the Pod.
	Namespace, Name, GenerateName string
	// SubResource is the request's ("" or "ephemeralcontainers").
	SubResource string
	// DryRun is the request's dryRun. A dry run gets the same answer as a real
	// request: reviewing has no side effects besides the caller's metrics and
	// logs (and the availability checks' read-only requests and cache).
	DryRun bool
	// Changes are the images replaced, in patch order.
	Changes []Change
	// Warnings are the response's warnings.
	Warnings []string
}

// Change is one image replaced in a Pod.
type Change struct {
	// Field is the container's key in the original-images annotation:
	// list/name, e.g. "containers/web".
	Field string
	// From is the image as the Pod had it; To is what detour admits.
	From, To string
	// Reason is rules.Rewritten or rules.Escaped.
	Reason rules.Reason
	// Rule is the From of the matching rule ("" for an escape).
	Rule string
	// Choice says which mirror of the chain availability checking took, ""
	// when it did not run.
	Choice string
}

// Response is one admission response. detour never denies a Pod: every
// response allows, with or without a patch.
type Response struct {
	// UID echoes the request's uid.
	UID string
	// Patch is an RFC 6902 JSON patch; nil for none.
	Patch []byte
	// Warnings are shown to the client that made the request.
	Warnings []string
}

// Allowed admits the request unchanged.
func Allowed(uid string, warnings ...string) Response {
	return Response{UID: uid, Warnings: warnings}
}

// PatchResponse admits the request with a JSON patch applied.
func PatchResponse(uid string, patch []byte, warnings ...string) Response {
	return Response{UID: uid, Patch: patch, Warnings: warnings}
}

// AppendReview appends the AdmissionReview of apiVersion that carries r.
func (r Response) AppendReview(dst []byte, apiVersion string) []byte {
	dst = append(dst, `{"apiVersion":`...)
	dst = jsonstr.Append(dst, apiVersion)
	dst = append(dst, `,"kind":"AdmissionReview","response":{"uid":`...)
	dst = jsonstr.Append(dst, r.UID)
	dst = append(dst, `,"allowed":true`...)
	if r.Patch != nil {
		dst = append(dst, `,"patchType":"JSONPatch","patch":"`...)
		dst = base64.StdEncoding.AppendEncode(dst, r.Patch)
		dst = append(dst, '"')
	}
	if len(r.Warnings) > 0 {
		dst = append(dst, `,"warnings":[`...)
		for i, w := range r.Warnings {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = jsonstr.Append(dst, w)
		}
		dst = append(dst, ']')
	}
	return append(dst, "}}"...)
}

// ErrBadRequest is wrapped by every error of Review: the request is not an
// AdmissionReview detour can answer. The HTTP layer answers it with 400.
var ErrBadRequest = errors.New("bad admission request")

func badRequest(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBadRequest, fmt.Sprintf(format, args...))
}

// Review answers the AdmissionReview in body under policy p. Its error, which
// wraps ErrBadRequest, says why body is not a request it can answer: not
// JSON, not an AdmissionReview of a known version, no request, no uid, or a
// Pod whose fields have the wrong JSON types. Anything detour itself cannot
// do (an invalid image, a failed availability check) never fails a review:
// the Pod is allowed, unchanged where needed, with a warning.
//
// ctx bounds availability checking; Review does nothing else that blocks.
func Review(ctx context.Context, body []byte, p *Policy) (Result, error) {
	return AppendReview(ctx, nil, body, p)
}

// AppendReview is Review with the response appended to dst: a server that
// reuses its response buffers spares the garbage collector a kilobyte or
// more per request. Result.Response is the extended dst.
func AppendReview(ctx context.Context, dst []byte, body []byte, p *Policy) (Result, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return Result{}, badRequest("the body is empty")
	}
	st := getState()
	defer putState(st)
	objErr, err := decodeReview(body, st)
	rv := &st.rv
	if err != nil {
		var se *SyntaxError
		if errors.As(err, &se) {
			return Result{}, badRequest("the body is not JSON: %v", err)
		}
		return Result{}, badRequest("%v", err)
	}
	switch {
	case rv.kind != "AdmissionReview":
		return Result{}, badRequest("kind is %q, want AdmissionReview", rv.kind)
	case rv.apiVersion != APIVersionV1 && rv.apiVersion != APIVersionV1beta1:
		return Result{}, badRequest("apiVersion is %q, want %s or %s", rv.apiVersion, APIVersionV1, APIVersionV1beta1)
	case rv.request == nil:
		return Result{}, badRequest("the AdmissionReview has no request")
	case rv.request.uid == "":
		return Result{}, badRequest("the request has no uid")
	}
	req := rv.request
	res := Result{
		APIVersion:  rv.apiVersion,
		UID:         req.uid,
		Operation:   req.operation,
		Namespace:   req.namespace,
		Name:        req.name,
		SubResource: req.subResource,
		DryRun:      req.dryRun,
		Outcome:     Skipped,
	}
	isPod := req.kind.group == "" && req.kind.kind == "Pod"
	if isPod && objErr != nil {
		return Result{}, badRequest("%v", objErr)
	}
	var resp Response
	switch res.Skip = skipReason(req, isPod, p); res.Skip {
	case "":
		if req.object.name != "" {
			res.Name = req.object.name
		}
		res.GenerateName = req.object.generateName
		resp = mutate(ctx, st, p, &res)
	default:
		if req.object != nil && res.Name == "" {
			res.Name, res.GenerateName = req.object.name, req.object.generateName
		}
		resp = Allowed(req.uid)
	}
	if dst == nil {
		size := 128 + len(rv.apiVersion) + len(req.uid) + base64.StdEncoding.EncodedLen(len(resp.Patch)) + warningsLen(resp.Warnings)
		dst = make([]byte, 0, size)
	}
	res.Response = resp.AppendReview(dst, rv.apiVersion)
	if resp.Patch != nil {
		st.buf = resp.Patch[:0] // encoded; no one else holds it
	}
	return res, nil
}

func warningsLen(ws []string) int {
	n := 0
	for _, w := range ws {
		n += 2*len(w) + 8 // room for some escapes
	}
	return n
}

// skipReason says why a request is not to be considered, "" if it is.
func skipReason(req *request, isPod bool, p *Policy) string {
	switch {
	case !isPod:
		return SkipNotPod
	case req.operation != "CREATE" && req.operation != "UPDATE":
		return SkipOperation
	case req.subResource != "" && !(req.subResource == "ephemeralcontainers" && req.operation == "UPDATE"):
		return SkipSubResource
	case req.object == nil:
		return SkipNoObject
	case !p.Enabled:
		return SkipDisabled
	}
	ns := req.namespace
	if ns == "" {
		ns = req.object.namespace
	}
	switch {
	case p.OwnNamespace != "" && ns == p.OwnNamespace:
		return SkipOwnNamespace
	case !p.Namespaces.Allows(ns):
		return SkipNamespace
	case req.object.skip:
		return SkipLabelled
	}
	return ""
}
