#!/usr/bin/env bash
# Builds the OpenID Providers that the interop tests run as peers, from the
# Go module proxy, into a cache directory outside the repository:
#
#   ${CLOAKROOM_PEERS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/cloakroom-peers}/<name>-<version>/<name>
#
# A peer already there is reused; nothing of the peers' code or binaries is
# ever written into this repository. Each peer is built in a scratch module
# (a //go:build tools file importing its command, a pinned `go get`, then
# `go build`), in parallel, under a lock so that concurrent test runs build
# each peer once.
#
#   interop/peers/build.sh            # every peer
#   interop/peers/build.sh dex hydra  # some
#
# It prints one line per peer: "<name> <dir> <seconds>s (built|cached)".
set -euo pipefail

cache="${CLOAKROOM_PEERS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/cloakroom-peers}"
mkdir -p "$cache"

# name | module@version | command package | go build flags | extra go.mod lines
peers=(
	"dex|github.com/dexidp/dex@v0.0.0-20260303133905-11d2eeb52b42|github.com/dexidp/dex/cmd/dex||"
	"zitadel-op|github.com/zitadel/oidc/v3@v3.49.2|.||"
	"hydra|github.com/ory/hydra/v2@v2.3.0|github.com/ory/hydra/v2|-tags=sqlite,sqlite_omit_load_extension|replace github.com/gobuffalo/pop/v6 => github.com/ory/pop/v6 v6.2.1-0.20241121111754-e5dfc0f3344b"
)

# The zitadel/oidc example OP listens on every interface with a localhost
# issuer; this launcher (our own code) serves the same example OP
# (exampleop + storage, with its built-in users) on the address and issuer
# the test gives it.
zitadel_main='package main

import (
	"log/slog"
	"net/http"
	"os"
	"strings"

	"github.com/zitadel/oidc/v3/example/server/exampleop"
	"github.com/zitadel/oidc/v3/example/server/storage"
)

// Environment: LISTEN (host:port), ISSUER (URL), REDIRECT_URI (comma list).
func main() {
	issuer, listen := os.Getenv("ISSUER"), os.Getenv("LISTEN")
	redirects := strings.Split(os.Getenv("REDIRECT_URI"), ",")
	storage.RegisterClients(storage.WebClient("web", "secret", redirects...))
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	store := storage.NewStorage(storage.NewUserStore(issuer))
	router := exampleop.SetupServer(issuer, store, logger, false)
	logger.Info("listening", "addr", listen, "issuer", issuer)
	if err := http.ListenAndServe(listen, router); err != nil {
		logger.Error("server stopped", "error", err)
		os.Exit(1)
	}
}
'

build_one() {
	local name=$1 modver=$2 pkg=$3 flags=$4 extra=$5
	local version=${modver##*@} mod=${modver%@*}
	local dir="$cache/$name-$version" start=$SECONDS
	exec 9>"$dir.lock"
	flock 9
	if [ -x "$dir/$name" ]; then
		echo "$name $dir $((SECONDS - start))s cached"
		return
	fi
	local scratch
	scratch=$(mktemp -d "${TMPDIR:-/tmp}/cloakroom-peer-$name.XXXXXX")
	trap 'rm -rf "$scratch"' RETURN
	(
		cd "$scratch"
		export GOWORK=off GOFLAGS=-mod=mod
		go mod init "cloakroom.test/peer/$name" >/dev/null 2>&1
		if [ -n "$extra" ]; then echo "$extra" >>go.mod; fi
		if [ "$name" = zitadel-op ]; then
			printf '%s' "$zitadel_main" >main.go
			go get "$modver" >/dev/null
		else
			printf '//go:build tools\n\npackage tools\n\nimport _ "%s"\n' "$pkg" >tools.go
			go get "$pkg@$version" >/dev/null
		fi
		mkdir -p "$dir.tmp"
		CGO_ENABLED=1 go build $flags -trimpath -o "$dir.tmp/$name" "$pkg"
	) >"$cache/$name.log" 2>&1 || {
		echo "$name: build failed (log: $cache/$name.log):" >&2
		tail -20 "$cache/$name.log" >&2
		rm -rf "$dir.tmp"
		return 1
	}
	rm -rf "$dir"
	mv "$dir.tmp" "$dir"
	echo "$name $dir $((SECONDS - start))s built ($mod@$version)"
}

want=("$@")
pids=()
declare -A names
for p in "${peers[@]}"; do
	IFS='|' read -r name modver pkg flags extra <<<"$p"
	if [ ${#want[@]} -gt 0 ] && [[ " ${want[*]} " != *" $name "* ]]; then continue; fi
	build_one "$name" "$modver" "$pkg" "$flags" "$extra" &
	pids+=($!)
	names[$!]=$name
done
# A cold build takes minutes: say every 30 s which peers are still building.
started=$SECONDS
while :; do
	running=()
	for pid in "${pids[@]}"; do
		if kill -0 "$pid" 2>/dev/null; then running+=("${names[$pid]}"); fi
	done
	[ ${#running[@]} -eq 0 ] && break
	if [ $(((SECONDS - started) % 30)) -eq 0 ] && [ $((SECONDS - started)) -gt 0 ]; then
		echo "still building: ${running[*]} ($((SECONDS - started)) s; the first build takes a few minutes, later runs reuse it)"
	fi
	sleep 1
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
exit $status
