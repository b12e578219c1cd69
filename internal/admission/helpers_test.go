package admission

import (
	"testing"

	"github.com/detourhq/detour/internal/config"
)

// ownNamespace is the webhook's namespace in the tests.
const ownNamespace = "detour-system"

// defaultPolicy is the policy of the embedded default config.
func defaultPolicy(tb testing.TB) *Policy {
	tb.Helper()
	return policyOf(tb, config.Default())
}

func policyOf(tb testing.TB, cfg *config.Config) *Policy {
	tb.Helper()
	set, err := cfg.Compile()
	if err != nil {
		tb.Fatal(err)
	}
	return NewPolicy(cfg, set, ownNamespace, nil)
}

// parseConfig parses a config for a test.
func parseConfig(tb testing.TB, yaml string) *config.Config {
	tb.Helper()
	cfg, err := config.ParseBytes([]byte(yaml))
	if err != nil {
		tb.Fatal(err)
	}
	return cfg
}

// decode decodes body as Review does, into a state from the pool (so states
// used by earlier tests are reused, as in a server), given back when t ends.
func decode(t testing.TB, body []byte) (review, error, error) {
	st := getState()
	t.Cleanup(func() { putState(st) })
	objErr, err := decodeReview(body, st)
	return st.rv, objErr, err
}
