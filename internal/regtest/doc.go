// Package regtest runs real registries for tests: the CNCF distribution
// server (Debian package docker-registry, /usr/bin/docker-registry) as a child
// process on a free 127.0.0.1 port, and a fault-injecting reverse proxy to put
// in front of one.
//
// Contract:
//
//   - [Start] starts one registry with filesystem storage under t.TempDir(),
//     optionally with TLS (a certificate made in memory, its CA in
//     [Registry.CAPEM]), htpasswd basic auth (bcrypt, made with htpasswd -B)
//     and as a pull-through cache of another registry. It returns once GET
//     /v2/ answers, and stops the process by its PID in t.Cleanup. When the
//     test failed, the registry's log is printed.
//   - If /usr/bin/docker-registry (or htpasswd, for auth) is missing, the test
//     fails with "run hack/ensure-test-deps.sh": never a silent skip.
//   - The registry runs with relative URLs, so its upload Locations work
//     through proxies.
//   - [DockerConfig] writes a DOCKER_CONFIG directory holding the credentials
//     of the given registries.
//   - [NewFaultProxy] serves plain HTTP on 127.0.0.1 and forwards to an
//     upstream URL. Per request it may inject, at the seeded rate and at most
//     MaxFaults times in all: 429 with Retry-After, 503, a connection reset,
//     or a response body cut off halfway. It records every request it saw, so
//     a test can count requests of a kind ([FaultProxy.Requests]); with Rate 0
//     it is a plain counting proxy.
//
// Nothing here is meant for production code; it imports testing.
package regtest
