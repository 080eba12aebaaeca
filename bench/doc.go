// Package bench holds cloakroom's benchmarks. It is a separate module so
// that library users never inherit the dependencies of the peers it is
// compared with (coreos/go-oidc, ...).
//
//	cd bench && go test -run '^$' -bench . -benchmem
package bench
