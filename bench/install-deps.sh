#!/bin/sh
# Install what bench/run compares against and uses (Debian/Ubuntu):
# nginx with its mail module, Perdition (+ LDAP map), matplotlib for
# bench/plot, and the small tools the runner calls.
#
#	bench/install-deps.sh [sql]
#
# "sql" adds what the postern-sqlN and perdition-mysql targets need: the
# MariaDB server and client (bench/run starts its own throwaway server,
# never the system's), libmariadb-dev and pkg-config (postern's MySQL
# driver is built only when configure finds libmariadb) and Perdition's
# MySQL map (perdition-mysql).
#
# The packages' init scripts must not start system services: unless a
# policy-rc.d is already in place, one that denies every start is put
# there for the install and removed again afterwards.
set -eu

pkgs="nginx libnginx-mod-mail perdition perdition-ldap python3
python3-matplotlib openssl iproute2 procps util-linux coreutils
libssl-dev gcc"
for arg in "$@"; do
	case $arg in
	sql) pkgs="$pkgs mariadb-server mariadb-client libmariadb-dev
pkg-config perdition-mysql" ;;
	*) echo "install-deps: unknown argument $arg" >&2; exit 2 ;;
	esac
done

missing=
for p in $pkgs; do
	dpkg-query -W -f '${Status}' "$p" 2>/dev/null |
	    grep -q 'install ok installed' || missing="$missing $p"
done
if [ -z "$missing" ]; then
	echo "install-deps: all packages present"
	exit 0
fi

policy=/usr/sbin/policy-rc.d
created=
if [ ! -e "$policy" ]; then
	printf '#!/bin/sh\nexit 101\n' > "$policy"
	chmod 755 "$policy"
	created=1
fi
cleanup() { [ -n "$created" ] && rm -f "$policy"; }
trap cleanup EXIT INT TERM

echo "install-deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
# shellcheck disable=SC2086
if ! apt-get install -y --no-install-recommends $missing; then
	apt-get update
	# shellcheck disable=SC2086
	apt-get install -y --no-install-recommends $missing
fi
