module github.com/detourhq/detour/test/e2e

go 1.24.0
