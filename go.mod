module github.com/detourhq/detour

go 1.26

require (
	github.com/distribution/reference v0.6.0
	gopkg.in/yaml.v3 v3.0.1
)

require github.com/opencontainers/go-digest v1.0.0 // indirect
