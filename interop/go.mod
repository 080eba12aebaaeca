module github.com/cloakroom/cloakroom/interop

go 1.25.0

replace github.com/cloakroom/cloakroom => ../

require (
	github.com/Nerzal/gocloak/v13 v13.9.0
	github.com/cloakroom/cloakroom v0.0.0-00010101000000-000000000000
	github.com/coreos/go-oidc/v3 v3.21.0
	golang.org/x/oauth2 v0.36.0
)

require (
	github.com/go-jose/go-jose/v4 v4.1.8 // indirect
	github.com/go-json-experiment/json v0.0.0-20251027170946-4849db3c2f7e // indirect
	github.com/go-resty/resty/v2 v2.7.0 // indirect
	github.com/golang-jwt/jwt/v5 v5.0.0 // indirect
	github.com/opentracing/opentracing-go v1.2.0 // indirect
	github.com/pkg/errors v0.9.1 // indirect
	github.com/segmentio/ksuid v1.0.4 // indirect
	golang.org/x/net v0.17.0 // indirect
)
