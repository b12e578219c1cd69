// Package webhook is the I/O shell around package admission: the HTTPS
// server of `detour serve`, its probes and metrics, and the live config and
// certificate.
//
//   - /mutate (HTTPS, TLS 1.2 or later) takes POSTed AdmissionReviews of at
//     most 3 MiB with Content-Type application/json; anything else, and any
//     body admission.Review refuses, is answered 400 with a one-line reason.
//     A panic is answered 500 and logged; the process never dies of one.
//   - The probe port serves /healthz, /readyz (ready once a config and a
//     certificate are loaded, and until shutdown starts) and /metrics from a
//     registry the caller owns.
//   - The serving certificate comes from a CertSource, asked on every TLS
//     handshake: FileCert reloads a PEM pair when its files change (watching
//     their directory, so the kubelet's symlink swap of a Secret volume is
//     seen, and polling), keeping the last good pair; SelfSigned makes one in
//     memory.
//   - The config lives in a Store as an immutable Snapshot behind an
//     atomic.Pointer. WatchFile and WatchConfigMap feed it; a change applies
//     within 5 s; an invalid config is refused, logged, counted (and, for a
//     ConfigMap, reported as an Event on it), and the last good one serves.
//   - Serve shuts down gracefully when its context ends: readiness turns
//     off, and requests in flight are answered.
//
// Logging: one info line per Pod whose images changed, a warning line per
// Pod admitted with warnings, nothing at info level for Pods left alone.
package webhook
