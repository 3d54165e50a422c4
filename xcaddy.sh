#!/usr/bin/env bash
# xcaddy.sh — build, run and test a Caddy that includes Tollgate from this checkout.
#
#   ./xcaddy.sh build          build ./caddy (Caddy v2.11.9 + this module)
#   ./xcaddy.sh run [ARGS]     build, then run the demo in Caddyfile.example
#   ./xcaddy.sh test [ARGS]    build, then `go test ./...` with TOLLGATE_CADDY_BIN=./caddy
#   ./xcaddy.sh bench [ARGS]   build, then the load benchmark (go run ./bench -caddy ./caddy ARGS)
#   ./xcaddy.sh help           this text
#
# ./caddy is rebuilt only when a build input (Go sources, embedded files, go.mod, go.sum, this
# script) is newer than it; FORCE=1 rebuilds anyway. Needs Go >= 1.26; installs xcaddy if missing.
set -euo pipefail

CADDY_VERSION=v2.11.9
XCADDY_VERSION=v0.4.5
MODULE=github.com/tollgate-auth/tollgate
BIN=./caddy

# Work from the checkout, wherever the script is called from.
cd "$(dirname "${BASH_SOURCE[0]}")"

usage() {
	sed -n '2,11s/^# \{0,1\}//p' "$0"
}

die() {
	echo "xcaddy.sh: $*" >&2
	exit 1
}

need_go() {
	if ! command -v go >/dev/null 2>&1; then
		if [[ -x /usr/local/go/bin/go ]]; then
			export PATH="/usr/local/go/bin:$PATH"
		else
			die "go not found; install Go 1.26 or newer (https://go.dev/dl/)"
		fi
	fi
}

# xcaddy_bin prints the path of an xcaddy binary, installing the pinned version when none is
# on PATH or in $(go env GOPATH)/bin.
xcaddy_bin() {
	if command -v xcaddy >/dev/null 2>&1; then
		command -v xcaddy
		return
	fi
	local gobin
	gobin="$(go env GOBIN)"
	[[ -n "$gobin" ]] || gobin="$(go env GOPATH)/bin"
	if [[ ! -x "$gobin/xcaddy" ]]; then
		echo "xcaddy.sh: installing xcaddy $XCADDY_VERSION into $gobin" >&2
		go install "github.com/caddyserver/xcaddy/cmd/xcaddy@$XCADDY_VERSION" >&2
	fi
	echo "$gobin/xcaddy"
}

# stale succeeds when $BIN is missing or older than a build input: a non-test file in a package
# directory (Go sources and what they go:embed, such as the issuer's page templates), or at the
# top: *.go, go.mod, go.sum and this script. Tests, testdata, docs and dotfiles do not go
# into the binary, so editing them does not trigger a rebuild.
stale() {
	[[ -x "$BIN" ]] || return 0
	local newer
	newer="$(find . -mindepth 1 \( -name '.*' -o -name testdata -o -path ./bench/out \) -prune -o \
		-type f -newer "$BIN" ! -name '*_test.go' \
		\( -path './*/*' ! -name '*.md' -o -name '*.go' -o -name go.mod -o -name go.sum -o -name xcaddy.sh \) \
		-print -quit)"
	[[ -n "$newer" ]]
}

build() {
	need_go
	if [[ "${FORCE:-}" != 1 ]] && ! stale; then
		echo "xcaddy.sh: $BIN is up to date (FORCE=1 rebuilds)" >&2
		return
	fi
	local xc stamp start
	xc="$(xcaddy_bin)"
	# Sources edited while the build runs must make the next call rebuild: the binary gets
	# the mtime of the moment the build started, not of the moment it finished.
	stamp="$(mktemp)"
	start=$SECONDS
	echo "xcaddy.sh: building $BIN (Caddy $CADDY_VERSION + $MODULE from $PWD)" >&2
	# The Caddy modules register in $MODULE/caddymodule (the module root has no package, and
	# xcaddy blank-imports what --with names). The local checkout replaces the module at a
	# pinned version (@v0.0.0); GOPRIVATE keeps go from asking the module proxy about
	# versions of it that do not exist (a proxy may answer 403, which go treats as fatal).
	if ! GOPRIVATE="${GOPRIVATE:+$GOPRIVATE,}$MODULE" "$xc" build "$CADDY_VERSION" \
		--with "$MODULE/caddymodule@v0.0.0" \
		--replace "$MODULE@v0.0.0=." \
		--output "$BIN" >&2; then
		rm -f "$stamp"
		die "build failed"
	fi
	touch -r "$stamp" "$BIN"
	rm -f "$stamp"
	echo "xcaddy.sh: built $BIN in $((SECONDS - start))s" >&2
}

cmd="${1:-help}"
[[ $# -gt 0 ]] && shift

case "$cmd" in
build)
	build
	;;
run)
	build
	exec "$BIN" run --config Caddyfile.example --adapter caddyfile "$@"
	;;
test)
	build
	TOLLGATE_CADDY_BIN="$PWD/caddy" exec go test ./... "$@"
	;;
bench)
	build
	exec go run ./bench -caddy "$BIN" "$@"
	;;
help | -h | --help)
	usage
	;;
*)
	echo "xcaddy.sh: unknown command \"$cmd\"" >&2
	usage >&2
	exit 2
	;;
esac
