#!/bin/sh
# The image's entrypoint. With no arguments or options only, it publishes the CA's public
# certificate (never the key) for agents, then becomes `interlock run` through exec, so SIGTERM
# from `docker stop` reaches Interlock itself and it shuts down in order. A first argument that is
# not an option runs that subcommand instead: `docker run IMAGE tokens list`.
set -eu

: "${INTERLOCK_HOME:=/data}"
: "${INTERLOCK_CA_EXPORT:=/ca}"
export INTERLOCK_HOME

case "${1:-}" in
    "" | -*) ;;
    *) exec interlock "$@" ;;
esac

# `interlock ca` creates the CA on first start and prints the public certificate's path.
cert="$(interlock ca)"
if grep -q "PRIVATE KEY" "$cert"; then
    echo "interlock-entrypoint: $cert holds a private key; refusing to publish it" >&2
    exit 1
fi
staged="$INTERLOCK_CA_EXPORT/.interlock-ca.pem.tmp"
cp "$cert" "$staged"
chmod 0644 "$staged"
mv -f "$staged" "$INTERLOCK_CA_EXPORT/interlock-ca.pem"  # agents never see a half-written file

exec interlock run "$@"
