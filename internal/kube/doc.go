// Package kube is a minimal Kubernetes API client for the few objects detour touches: core/v1
// Secrets, ConfigMaps, Events and Pods, and admissionregistration/v1
// MutatingWebhookConfigurations.
//
// It exists so that the detour binary does not import client-go's typed clientset
// (k8s.io/client-go/kubernetes): that package's scheme registers every API group's types at
// start, which alone costs a process about 9 MB of resident memory. A Client is two
// k8s.io/client-go/rest clients sharing one HTTP client, with a JSON codec built from a
// private scheme holding only the two API groups above.
//
// The contract:
//
//   - Requests and answers are JSON; the methods send what client-go's typed clients send
//     (same paths, verbs and query parameters), so RBAC, field managers and
//     resourceVersion preconditions behave the same.
//   - Errors are the rest client's, returned as they are, so k8s.io/apimachinery/pkg/api/errors
//     (IsNotFound, IsAlreadyExists, IsConflict, ...) classifies them as for the clientset;
//     callers wrap them with the operation and the object, as they did for the clientset.
//   - The package logs nothing and keeps no state besides the connection pool.
package kube
