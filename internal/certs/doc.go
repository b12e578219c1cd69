// Package certs gives detour's webhook a serving certificate that the kube-apiserver trusts,
// without cert-manager and without a human: a private CA and a serving certificate kept in one
// Secret, and the CA published as the caBundle of detour's own MutatingWebhookConfiguration.
//
// The contract, which the e2e tests in test/e2e hold it to against a real kube-apiserver:
//
//   - One Secret (type kubernetes.io/tls) holds everything: tls.crt and tls.key (the serving
//     certificate), ca.crt (every CA still trusted, the signing one first), ca.key (the
//     signing CA's key), and annotations giving the expiry times in RFC 3339.
//   - Replicas starting together end with the same certificate: each creates the Secret only
//     when it does not exist, and one that loses the race (AlreadyExists) reads and adopts the
//     winner's. A valid Secret is never overwritten; updates carry the resourceVersion they
//     were computed from, and on Conflict the replica re-reads and adopts what it finds.
//   - The caBundle of every webhook in the configuration is set to ca.crt before a certificate
//     is served, and Manager.Ready is closed only after that.
//   - Certificates are renewed at two thirds of their lifetime (CA: 10 years, serving: 1 year
//     by default). A serving renewal keeps the CA, so the caBundle stays valid. A CA renewal
//     puts the new CA in front of the old one in ca.crt (both trusted) and keeps the old
//     serving certificate for Policy.CAPropagation, so that the new caBundle reaches every
//     apiserver before any replica serves a certificate signed by the new CA.
//   - A renewed certificate is served without a restart: GetCertificate reads an atomic
//     pointer. Other replicas see the new Secret by polling it (the RBAC grants get, not
//     watch) and at the renewal time they computed themselves.
//   - Expiry returns the serving certificate's NotAfter for the caller's metric; the package
//     registers nothing itself and logs only through the *slog.Logger it is given.
//
// The pure parts (NewCA, NewServing, Policy.Plan, Decode/Encode) need no apiserver and are
// unit-tested; Manager is the thin shell around them over internal/kube's API client.
package certs
