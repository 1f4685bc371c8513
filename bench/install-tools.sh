#!/bin/sh
# install-tools.sh: make sure wrk, nginx (with its stream module) and HAProxy
# are installed, from Debian's packages, for bench/cmd/compare. Idempotent:
# installs only what is missing. Uses sudo when not root. The packages' init
# scripts are kept from starting nginx and HAProxy as system services (a
# temporary policy-rc.d, the Debian mechanism), and any service the install
# started anyway is stopped and disabled: the harness runs its own copies.
set -eu

missing=""
have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; }

have wrk || missing="$missing wrk"
if have haproxy; then :; else missing="$missing haproxy"; fi
if have nginx; then
	nginx_bin=$(command -v nginx 2>/dev/null || echo /usr/sbin/nginx)
	# Debian builds the stream module (L4 relay) as a separate package.
	if "$nginx_bin" -V 2>&1 | grep -q -- '--with-stream=dynamic' &&
		[ ! -e /usr/lib/nginx/modules/ngx_stream_module.so ]; then
		missing="$missing libnginx-mod-stream"
	fi
else
	missing="$missing nginx libnginx-mod-stream"
fi

if [ -z "$missing" ]; then
	echo "bench: wrk, nginx and haproxy are installed"
	exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
	echo "bench: missing:$missing; no apt-get here, install them yourself (the harness skips what is missing)" >&2
	exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
	if ! command -v sudo >/dev/null 2>&1; then
		echo "bench: missing:$missing; not root and no sudo, install them yourself (the harness skips what is missing)" >&2
		exit 0
	fi
	SUDO=sudo
fi

running_before() { pidof "$1" >/dev/null 2>&1; }
nginx_was=0; running_before nginx && nginx_was=1
haproxy_was=0; running_before haproxy && haproxy_was=1

# policy-rc.d exit 101 tells invoke-rc.d not to start services during the
# install; ours is removed afterwards, and one that was there is left alone.
policy=/usr/sbin/policy-rc.d
own_policy=0
if [ ! -e "$policy" ]; then
	printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
	$SUDO chmod 755 "$policy"
	own_policy=1
fi
cleanup() { if [ "$own_policy" = 1 ]; then $SUDO rm -f "$policy"; fi; }
trap cleanup EXIT INT TERM

echo "bench: installing$missing"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing

# A service the install started (or enabled) must not keep running.
stop_service() {
	name=$1
	if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
		$SUDO systemctl disable --now "$name" >/dev/null 2>&1 || true
	elif command -v service >/dev/null 2>&1; then
		$SUDO service "$name" stop >/dev/null 2>&1 || true
	fi
}
if [ "$nginx_was" = 0 ] && running_before nginx; then stop_service nginx; fi
if [ "$haproxy_was" = 0 ] && running_before haproxy; then stop_service haproxy; fi
case "$missing" in *nginx*) [ "$nginx_was" = 1 ] || stop_service nginx ;; esac
case "$missing" in *haproxy*) [ "$haproxy_was" = 1 ] || stop_service haproxy ;; esac
echo "bench: tools ready"
