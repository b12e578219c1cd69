// Package imagesync copies images into a mirror under exactly the names the
// webhook gives them: the engine of `detour sync` (SPEC §3, §5).
//
// A run has three steps. [ParseList] reads an images list (one reference
// per line, "#" comments, blank lines ignored; any invalid line fails the
// whole list, with line numbers). [Plan] asks the rule set where each image
// goes: the target of a Rewritten decision is the first entry of its chain;
// every other decision is a skip with its reason. [Syncer.Run] carries the
// plan out and returns one [Result] per job.
//
// The copy contract:
//
//   - Manifests are copied as bytes, never re-serialised: an index keeps
//     all its platforms and its digest (and so does every child). With
//     Options.Platform an index is narrowed to one child, pushed under the
//     target tag; the Result says Narrowed and that the digest changed.
//   - An image already at the target with the source's digest costs one
//     HEAD on each side (none on the source when the digest is written in
//     the reference). Every manifest request accepts all four manifest
//     media types, so distribution 2.8 answers the stored manifest.
//   - A blob is put into a target registry once per run: it is checked with
//     HEAD, uploaded once, and mounted into every other repository that
//     needs it. Uploads stream from the source GET straight into a single
//     PUT: the bytes pass once and are not hashed here, because the target
//     registry verifies the digest before it accepts a blob.
//   - Up to 16 images are checked at once; those the target lacks are
//     copied Options.Parallel at a time, and so many blob transfers run.
//   - Every operation is retried on 408, 429, 500, 502, 503, 504, resets
//     and cut bodies, with exponential backoff and jitter, honouring
//     Retry-After (see [Retry]); an interrupted blob transfer restarts from
//     a fresh GET and a fresh upload session.
//   - Credentials come from the keychain (default: authn.DefaultKeychain,
//     which reads DOCKER_CONFIG). Plain HTTP is used only for loopback
//     registries and Options.Insecure; other hosts get HTTPS.
//   - A dry run only sends HEAD and GET.
//
// [ClusterImages] reads the images list from the detour.dev/original-images
// annotations of a cluster's Pods instead.
//
// The package is silent: it reports through Options.Events and
// Options.Logger and never writes to stdout or stderr.
package imagesync
