// Package registry answers one question for the rest of detour: does this
// mirror have this image? It speaks just enough of the registry HTTP API to
// answer it correctly and cheaply.
//
// Contract:
//
//   - A registry has an image when HEAD /v2/<name>/manifests/<tag-or-digest>
//     answers 200 with all four manifest media types in Accept (Docker v2
//     schema 2, Docker manifest list, OCI manifest, OCI index); 404 means it
//     lacks it; anything else is an error. Sending all four matters:
//     distribution 2.8 answers 404 for an OCI index when the OCI index type
//     is not accepted, even by digest, and answers a child's digest for a
//     Docker manifest list asked for as a single image. An image with both a
//     tag and a digest is looked up by digest, as a container runtime pulls
//     it. When the lookup was by digest and the registry names a different
//     digest, that is an error, not a yes.
//   - A 401 starts the auth dance once: the WWW-Authenticate challenge
//     ([ParseChallenges]) chooses Basic (credentials sent directly) or Bearer
//     (a token from the challenge's realm for the service and the scope
//     repository:<name>:pull, fetched with the credentials, or anonymously
//     without them), then the request is retried once. Credentials come from
//     an authn.Keychain, by default the docker config (DOCKER_CONFIG or
//     ~/.docker/config.json). Tokens are cached per registry and scope until
//     shortly before they expire; a Basic header is kept per registry and
//     re-resolved when it stops working. A realm must be https, or http when
//     the registry itself is reached over http.
//   - Each registry host gets its own http.Client and Transport (connection
//     reuse, [MaxIdleConnsPerHost]), and every request is bounded by the
//     client's Timeout. HTTPS is used, verified against the system roots (or
//     ClientOptions.RootCAs). Loopback hosts (127.0.0.0/8, ::1, localhost)
//     and the configured insecure registries may use plain HTTP: HTTPS is
//     tried first and plain HTTP is used when the server answers HTTPS with
//     HTTP. A certificate problem is never answered by falling back to plain
//     HTTP nor by skipping verification; it is reported.
//   - [Client.Ping] probes GET /v2/ and reports reachability, latency, the
//     auth scheme and whether the credentials work, and TLS and network
//     problems in plain words ([Ping.Note]).
//   - [Checker] puts a cache in front of a [Client] for the admission hot
//     path: a warm Has takes no lock and allocates nothing (the answers
//     sit in a sync.Map of entries whose answer is replaced whole), and
//     [Checker.CachedFirst] settles a whole fallback chain with one clock
//     read. Positive answers live for TTL, negative ones for TTL/10, errors
//     are not cached; the cache is a bounded LRU ([DefaultCacheSize]) whose
//     recency is kept to the second (an entry moved to the front less than a
//     second ago is not moved again, so busy lookups write no list). Concurrent
//     checks of one image share one request (singleflight), and that request
//     is detached from the callers: each caller returns by its own context's
//     deadline with false and the context's error, while the request runs on
//     (bounded by the client timeout) and fills the cache for the next
//     admission. A positive entry in the last tenth of its TTL is served and
//     refreshed once in the background. A registry with
//     FailuresBeforeDown consecutive outages (network errors, timeouts, 5xx,
//     429) is marked down for CoolDown: Has answers false at once with an
//     error matching [ErrMarkedDown], cached answers included, until a
//     background probe of /v2/ or the first check after the cooling period
//     succeeds. [Checker.Close] stops every background goroutine.
//   - [FirstAvailable] picks, from a fallback chain, the first image whose
//     registry has it, checking the candidates in parallel within the
//     caller's context.
//   - Metrics go to an optional [Metrics] ([NewPrometheus] registers
//     detour_mirror_checks_total{mirror,result} and detour_mirror_up{mirror}
//     on a registerer the caller owns). Logs go to the *slog.Logger given;
//     the package never writes anywhere on its own.
package registry
