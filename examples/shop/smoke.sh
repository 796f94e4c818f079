#!/bin/sh
# The shop's smoke test, run by cutover as a command check: against the new
# release through the preview listener before the switch, and against each
# running instance of the live release after an expand migration
# (verify-live). It walks a shopper's path: catalog, cart, checkout, order.
#
# cutover sets CUTOVER_PREVIEW_URL (where to send requests),
# CUTOVER_SERVICE_HOST (the Host header that selects the service) and, when
# the preview listener has a token, CUTOVER_PREVIEW_TOKEN. By hand:
#   CUTOVER_PREVIEW_URL=http://127.0.0.1:8081 ./smoke.sh
set -eu

base=${CUTOVER_PREVIEW_URL:?CUTOVER_PREVIEW_URL is not set}
host=${CUTOVER_SERVICE_HOST:-localhost}
jar=$(mktemp)
trap 'rm -f "$jar"' EXIT

fail() { echo "smoke: $*" >&2; exit 1; }

# req METHOD PATH: prints the body; fails on a status other than 2xx.
req() {
  if [ -n "${CUTOVER_PREVIEW_TOKEN:-}" ]; then
    set -- "$@" -H "X-Cutover-Preview-Token: $CUTOVER_PREVIEW_TOKEN"
  fi
  method=$1
  path=$2
  shift 2
  curl -sS --fail-with-body --max-time 5 -H "Host: $host" -b "$jar" -c "$jar" \
    -X "$method" "$base$path" "$@" || fail "$method $path failed"
}

expect() {  # expect TEXT WHAT BODY
  case "$3" in
    *"$1"*) ;;
    *) fail "$2: expected '$1' in: $3" ;;
  esac
}

release=$(req GET /version)
expect ok "health" "$(req GET /healthz)"

products=$(req GET /products)
expect '"products":[' "GET /products" "$products"
expect '"id":"gadget"' "GET /products" "$products"

req POST '/cart/add?item=widget' >/dev/null
req POST '/cart/add?item=gizmo' >/dev/null
cart=$(req POST '/cart/remove?item=gizmo')
expect '"item":"widget"' "cart after add and remove" "$cart"
case "$cart" in *gizmo*) fail "cart still holds the removed gizmo: $cart" ;; esac

if [ "$release" = v1 ]; then
  order=$(req POST /checkout)
else
  order=$(req POST '/checkout?gift_message=smoke%20test')
fi
id=$(printf '%s' "$order" | sed -n 's/.*"order_id":\([0-9][0-9]*\).*/\1/p')
[ -n "$id" ] || fail "POST /checkout returned no order_id: $order"

placed=$(req GET "/orders/$id")
expect '"item":"widget"' "order $id" "$placed"
if [ "$release" != v1 ]; then
  expect '"gift_message":"smoke test"' "order $id" "$placed"
fi
expect '"count":0' "cart after checkout" "$(req GET /cart)"

echo "smoke: $release at $base: catalog, cart, checkout and order $id ok"
