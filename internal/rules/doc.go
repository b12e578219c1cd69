// Package rules is detour's rule engine: it compiles mirror rules into an
// immutable [Set] and decides, for one image string, which image a Pod should
// run instead.
//
// The contract is the rewrite semantics of the user-facing spec:
//
//  1. Escape. An image that starts with the escape prefix (default
//     "direct.to/") loses the prefix and nothing else changes.
//  2. Normalise, for matching only. "nginx" is docker.io/library/nginx;
//     index.docker.io and registry-1.docker.io are docker.io; hosts compare
//     case-insensitively; a port is part of the host, except that ":443", the
//     port every registry is reached on by default, is dropped.
//  3. Match. A rule matches when the registry equals the host of From and the
//     repository path equals From's path or continues it after a "/". The
//     longest From wins; "*" matches every registry and loses to any other
//     rule. Order does not matter.
//  4. Build. The result is To (with "{registry}" expanded to the normalised
//     source host) + "/" + the rest of the path + the tag and digest exactly
//     as written. Nothing is added or dropped: no ":latest" appears.
//  5. Leave alone, byte-identical, when no rule matches, when the image already
//     lies under some rule's To (so a second pass changes nothing), and when the
//     string is not a valid reference ([Decision.Err] says why).
//
// The reference grammar is the one of github.com/distribution/reference. The
// common shapes (a lower-case path, an optional host and port, a tag, a sha256
// digest) are recognised by a scanner that allocates nothing; every other
// string is handed to reference.ParseNormalizedNamed, which stays the
// authority. A differential fuzz test holds the scanner to the library.
//
// The package knows nothing of Kubernetes, HTTP or YAML; it is pure and safe
// for concurrent use.
package rules
