module github.com/cloakroom/cloakroom/bench

go 1.25.0

replace github.com/cloakroom/cloakroom => ../

require (
	github.com/cloakroom/cloakroom v0.0.0
	github.com/coreos/go-oidc/v3 v3.21.0
	github.com/go-jose/go-jose/v4 v4.1.8
)

require (
	github.com/go-json-experiment/json v0.0.0-20251027170946-4849db3c2f7e // indirect
	golang.org/x/oauth2 v0.36.0 // indirect
)
