// Package admission answers Kubernetes AdmissionReviews for Pods: it reads
// the request, decides each image with the rule set, and writes the response
// with a JSON patch. It is pure: no network, no files, no logging. The HTTP
// side is internal/webhook's.
//
// The contract is SPEC §4:
//
//   - admission.k8s.io/v1 and v1beta1; the response echoes the request's
//     apiVersion and uid, and always allows: detour never denies a Pod.
//   - Pods on CREATE; on UPDATE only the images that differ from oldObject's
//     container of the same name (a label change never rewrites, so never
//     restarts, what runs); the pods/ephemeralcontainers subresource, where
//     only ephemeral containers are considered (kubectl debug).
//   - containers, initContainers and ephemeralContainers alike. The patch
//     has one RFC 6902 "replace" per changed image
//     (/spec/containers/0/image) and never re-serialises a container, so
//     fields this version does not know survive; plus the annotation
//     detour.dev/original-images, a JSON object string
//     {"containers/NAME":"IMAGE",...}, added as a whole map when the Pod has
//     no annotations and as one member otherwise ("/" escaped as "~1").
//   - Escaped images are recorded too. An image equal to what detour makes of
//     its recorded original is left alone: so a reinvocation
//     (reinvocationPolicy: IfNeeded), or an UPDATE, never turns an escaped
//     image back into a mirrored one. Existing entries are kept and merged.
//   - Skipped, unchanged: another kind, another subresource or operation,
//     enabled: false, the webhook's own namespace, namespaces the config
//     does not allow, Pods labelled detour.dev/skip: "true".
//   - An invalid image, or an availability check that fails, leaves the
//     image as written and adds a warning; never a denial.
//   - A dry run gets the same answer: a review has no side effects (the
//     caller's metrics and logs aside, and the read-only availability
//     checks, which may fill the checker's cache).
//
// Reading only what it needs. The request is read by a small JSON scanner
// (see decoder) that checks the syntax of the whole body, exactly as
// json.Valid does, but keeps only the fields above and skips the rest without
// allocating. On the load test's 6 KB Pod it takes about 8 µs of CPU: eight
// times less than encoding/json into a struct of those fields only, and
// twenty-five times less than decoding the AdmissionReview and the Pod into
// k8s.io/api types as controller-runtime does (BenchmarkDecode). Keys match
// case-sensitively, as in the apiserver.
//
// Availability checking (SPEC §6): with a Checker and check.enabled, each
// rewritten image takes the first entry of its fallback chain that the
// Checker has; all images of a Pod are checked in parallel within
// check.budget; when none has it, or the budget runs out, the original image
// stays, with a warning. The chosen entry is recorded in the annotation
// detour.dev/mirror-choice ({"containers/NAME":"mirror 2 of 3"}).
package admission
