#!/bin/bash
# localnvme-postgres — the entrypoint of the localnvme.local/postgres e2e workload image
# (hack/image/build.sh): Debian's PostgreSQL on a volume mounted at the parent of $PGDATA.
#
# PGDATA (default /var/lib/postgresql/data/pgdata) is a directory below the mount point, as
# the mount point itself holds lost+found. When PGDATA has no PG_VERSION, a fresh cluster is
# made: the line "LOCALNVME-INITDB <UTC date>" goes to stdout (the container log) and is
# appended to $PGDATA/../initdb.log; then, into an empty PGDATA, the image's template
# cluster is copied (made by initdb at image build: trust auth, UTF-8, C.UTF-8; every copy
# has the same system identifier, which only replication would notice) and synced, as
# initdb syncs what it makes, or else initdb runs
# as user postgres with those options. Then postgres runs (exec, PID 1) as user postgres, listening only on the unix
# socket in /tmp (psql -h /tmp -U postgres; pg_isready -h /tmp). Arguments are passed to
# postgres (e.g. -c fsync=off).
#
# Runs as root (then drops to postgres, making PGDATA postgres-owned) or directly as the
# postgres user (uid 999; the pod needs fsGroup 999 or a writable mount point then).
set -euo pipefail
export PGDATA=${PGDATA:-/var/lib/postgresql/data/pgdata}
TEMPLATE=/usr/share/localnvme-postgres/pgdata
log() { echo "localnvme-postgres: $*"; }

as_postgres=()
mkdir -p "$PGDATA"
if [[ $(id -u) -eq 0 ]]; then
	as_postgres=(setpriv --reuid=postgres --regid=postgres --init-groups --)
	chown postgres:postgres "$PGDATA"
fi
chmod 0700 "$PGDATA"

if [[ ! -s $PGDATA/PG_VERSION ]]; then
	line="LOCALNVME-INITDB $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "$line"
	echo "$line" >>"$PGDATA/../initdb.log"
	t0=$(date +%s)
	if [[ -s $TEMPLATE/PG_VERSION && -z $(ls -A "$PGDATA") ]]; then
		"${as_postgres[@]}" cp -a "$TEMPLATE/." "$PGDATA/"
		# initdb fsyncs the cluster it made; a copy must too, or files that postgres never
		# rewrites (catalogs, pg_control's neighbours) can come back empty after a power
		# loss, and crash recovery fails. syncfs of the volume's filesystem.
		sync -f "$PGDATA"
		log "fresh cluster: the image's initdb template copied and synced in $(($(date +%s) - t0)) s"
	else
		"${as_postgres[@]}" initdb -D "$PGDATA" --username=postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8
		log "initdb done in $(($(date +%s) - t0)) s"
	fi
else
	log "existing cluster in $PGDATA (PG_VERSION $(cat "$PGDATA/PG_VERSION"))"
fi

exec "${as_postgres[@]}" postgres -D "$PGDATA" -c listen_addresses= -c unix_socket_directories=/tmp \
	-c shared_buffers=32MB -c max_connections=20 "$@"
