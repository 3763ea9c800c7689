#!/usr/bin/env bash
# Local Apache Cassandra 5.0 for feast-spark development, tests and benchmarks: one node, or a
# ring of N nodes (one JVM each) for fault tests.
#
#   conf/cassandra/local-cassandra.sh [--nodes N] COMMAND
#   fetch     fetch cassandra-all + runtime jars into <home>/lib (Maven)
#   start     fetch if needed, start every node, wait until each answers CQL (idempotent)
#   stop      stop every node; no process is left behind (idempotent)
#   status    "running" (exit 0), "stopped" (exit 3); a ring partly up: exit 4
#   restart   stop, then start
#   start-node K | stop-node K | kill-node K    one node of a ring (kill-node: SIGKILL, no shutdown)
#   nodetool ARGS...   nodetool against node $LOCAL_CASSANDRA_NODE (default 1; JMX on 127.0.0.1)
#   stress ARGS...     cassandra-stress (see STRESS_VERSION below)
#
# A single node listens on 127.0.0.1: CQL 9042, storage 7000, JMX 7199. A ring's node K listens
# on the K-th consecutive loopback address from LOCAL_CASSANDRA_ADDRESS (default 127.0.0.1, so
# 127.0.0.1, .2, .3), same ports (CQL 9042, storage 7000), JMX on 127.0.0.1:(7199 + last byte - 1);
# node 1 is the seed; tokens are evenly spaced and nobody bootstraps. There is no Cassandra binary
# tarball on Maven Central, so the server runs as `java ... CassandraDaemon` on the jars of
# org.apache.cassandra:cassandra-all (version pinned in conf/cassandra/pom.xml).
#
# Layout of <home> (git-ignored): lib/ (jars), conf/cassandra.yaml (generated from
# conf/cassandra/cassandra.yaml), data/, logs/system.log, logs/stdout.log, cassandra.pid. A ring
# shares lib/ and gives node K its own <home>/nodeK/ with conf/, data/, logs/, cassandra.pid; its
# size and first address are kept in <home>/ring.env, so later commands need no --nodes.
#
# Environment:
#   LOCAL_CASSANDRA_HOME      state folder (default: <repo>/.cassandra)
#   LOCAL_CASSANDRA_NODES     nodes (default 1; --nodes N wins; a ring's later commands: ring.env)
#   LOCAL_CASSANDRA_ADDRESS   first node's address, 127.x.y.z (default 127.0.0.1)
#   LOCAL_CASSANDRA_RING_HEAP heap of each ring node (default 512m; a single node: jvm.options)
#   JAVA_HOME                 JDK 11 or 17 to run Cassandra with (default: `java` on PATH)
#   CASSANDRA_START_TIMEOUT   seconds to wait for CQL on start (default: 180)
#   CASSANDRA_STOP_TIMEOUT    seconds to wait after SIGTERM before SIGKILL (default: 60)
#   CASSANDRA_JVM_EXTRA_OPTS  extra JVM options, appended last (e.g. "-Xmx2g")
#   MVN                       Maven command (default: mvn)
#   PYTHON                    Python 3 for the CQL probe, stdlib only (default: <repo>/.venv/bin/python, python3)
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$SCRIPT_DIR/../.." && pwd)

HOME_DIR=${LOCAL_CASSANDRA_HOME:-$REPO_DIR/.cassandra}
mkdir -p "$HOME_DIR"
HOME_DIR=$(cd "$HOME_DIR" && pwd)
LIB_DIR=$HOME_DIR/lib
STAMP_FILE=$LIB_DIR/.fetched-pom.sha256
RING_FILE=$HOME_DIR/ring.env
LOCK_FILE=$HOME_DIR/.lock  # one start/stop at a time per home, ring or not

CQL_PORT=9042
STORAGE_PORT=7000
START_TIMEOUT=${CASSANDRA_START_TIMEOUT:-180}
STOP_TIMEOUT=${CASSANDRA_STOP_TIMEOUT:-60}
MAIN_CLASS=org.apache.cassandra.service.CassandraDaemon
# cassandra-stress is not in cassandra-all, and Maven Central carries no 4.x/5.x Cassandra binary
# tarball nor any stress artifact. The newest tarball there is 3.11.5; its cassandra-stress (a CQL
# client, native protocol v4) runs on Java 17 and works against this 5.0 node. Mind the version
# when comparing with published cassandra-stress 5.0 numbers.
STRESS_VERSION=3.11.5
STRESS_DIR=$HOME_DIR/tools/apache-cassandra-$STRESS_VERSION
# shellcheck source=conf/jvm-service.sh
source "$SCRIPT_DIR/../jvm-service.sh"
log() { printf 'local-cassandra: %s\n' "$*"; }
die() { printf 'local-cassandra: error: %s\n' "$*" >&2; exit 1; }
usage_error() { printf 'local-cassandra: error: %s\n' "$*" >&2; exit 2; }

# --- nodes -----------------------------------------------------------------------------------

# The ring's size and first address: --nodes / environment, else ring.env, else one node.
NODES=${LOCAL_CASSANDRA_NODES:-}
FIRST_ADDRESS=${LOCAL_CASSANDRA_ADDRESS:-}

load_layout() {
    local saved_nodes="" saved_address=""
    if [[ -f "$RING_FILE" ]]; then
        saved_nodes=$(sed -n 's/^nodes=//p' "$RING_FILE")
        saved_address=$(sed -n 's/^address=//p' "$RING_FILE")
    fi
    NODES=${NODES:-${saved_nodes:-1}}
    FIRST_ADDRESS=${FIRST_ADDRESS:-${saved_address:-127.0.0.1}}
    [[ "$NODES" =~ ^[1-9][0-9]*$ ]] || usage_error "node count '$NODES' is not a positive integer"
    [[ "$FIRST_ADDRESS" =~ ^127\.([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})$ ]] \
        || usage_error "LOCAL_CASSANDRA_ADDRESS '$FIRST_ADDRESS' is not a loopback address 127.x.y.z"
    local last=${BASH_REMATCH[3]}
    (( last >= 1 && last + NODES - 1 <= 254 )) \
        || usage_error "$NODES nodes from $FIRST_ADDRESS do not fit in ${FIRST_ADDRESS%.*}.1-254"
    if [[ -n "$saved_nodes" && ( "$saved_nodes" != "$NODES" || "$saved_address" != "$FIRST_ADDRESS" ) ]] \
        && [[ -n "$(all_daemon_pids "$saved_nodes")" ]]; then
        die "$HOME_DIR runs a ring of $saved_nodes nodes from $saved_address; stop it before changing to $NODES from $FIRST_ADDRESS"
    fi
}

save_layout() {
    if (( NODES > 1 )); then
        printf 'nodes=%s\naddress=%s\n' "$NODES" "$FIRST_ADDRESS" >"$RING_FILE"
    else
        rm -f "$RING_FILE"
    fi
}

# Address of node K: the K-th consecutive address from FIRST_ADDRESS.
node_address() { printf '%s.%s\n' "${FIRST_ADDRESS%.*}" $(( ${FIRST_ADDRESS##*.} + $1 - 1 )); }

# Select node K: sets the per-node paths, address, ports, token and daemon marker.
use_node() {
    NODE=$1
    (( NODE >= 1 && NODE <= NODES )) || usage_error "no node $NODE: the ring has nodes 1 to $NODES"
    CQL_HOST=$(node_address "$NODE")
    if (( NODES == 1 )); then
        NODE_DIR=$HOME_DIR
        JMX_PORT=7199
        INITIAL_TOKEN=0
        HINTED_HANDOFF=false
        NODE_NAME="Cassandra"
    else
        NODE_DIR=$HOME_DIR/node$NODE
        JMX_PORT=$(( 7199 + ${CQL_HOST##*.} - 1 ))
        # Evenly spaced Murmur3 tokens from -2^63, without overflowing 64-bit arithmetic.
        INITIAL_TOKEN=$(( ((NODE - 1) * (9223372036854775807 / NODES) - 4611686018427387904) * 2 ))
        HINTED_HANDOFF=true
        NODE_NAME="node $NODE ($CQL_HOST)"
    fi
    CONF_DIR=$NODE_DIR/conf
    DATA_DIR=$NODE_DIR/data
    LOG_DIR=$NODE_DIR/logs
    PID_FILE=$NODE_DIR/cassandra.pid
    # Unique argument on the daemon's command line: finds this node's daemon without a pid file.
    MARKER="-Dfeast_spark.local_cassandra=$NODE_DIR"
}

find_python() {
    if [[ -n "${PYTHON:-}" ]]; then printf '%s\n' "$PYTHON"
    elif [[ -x "$REPO_DIR/.venv/bin/python" ]]; then printf '%s\n' "$REPO_DIR/.venv/bin/python"
    else command -v python3 || die "no python3 for the CQL probe; set PYTHON"
    fi
}

# --- jars ------------------------------------------------------------------------------------

fetch() { fetch_jars cassandra-all Cassandra "$(daemon_pids)"; }

# --- processes -------------------------------------------------------------------------------

# Pids of this home's Cassandra daemon(s): the command line carries $MARKER and $MAIN_CLASS.
daemon_pids() { marked_pids; }

# Pids of every node's daemon for a ring of $1 nodes (default: NODES) of this home.
all_daemon_pids() {
    local count=${1:-$NODES} k saved_marker=${MARKER:-}
    for (( k = 1; k <= count; k++ )); do
        if (( count == 1 )); then MARKER="-Dfeast_spark.local_cassandra=$HOME_DIR"
        else MARKER="-Dfeast_spark.local_cassandra=$HOME_DIR/node$k"; fi
        daemon_pids
    done
    MARKER=$saved_marker
}

# CQL probe: STARTUP + "SELECT release_version FROM system.local" over native protocol v4.
# Prints the release version and exits 0 when the node answers the query.
cql_probe() {
    "$(find_python)" - "$CQL_HOST" "$CQL_PORT" "${1:-3}" <<'PY'
import socket, struct, sys

host, port, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])


def frame(stream, opcode, body):
    return struct.pack(">BBhBi", 0x04, 0, stream, opcode, len(body)) + body


def short_string(text):
    data = text.encode()
    return struct.pack(">H", len(data)) + data


def recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ValueError("connection closed by the server")
        buf += chunk
    return buf


def read_frame(sock):
    _, flags, _, opcode, length = struct.unpack(">BBhBi", recv_exact(sock, 9))
    body = recv_exact(sock, length)
    pos = 0
    if flags & 0x02:  # tracing id
        pos += 16
    if flags & 0x08:  # warnings: [string list]
        (count,) = struct.unpack_from(">H", body, pos)
        pos += 2
        for _ in range(count):
            (n,) = struct.unpack_from(">H", body, pos)
            pos += 2 + n
    if opcode == 0x00:  # ERROR: [int code][string message]
        code, n = struct.unpack_from(">iH", body, pos)
        raise ValueError(f"server error 0x{code:04x}: {body[pos + 6:pos + 6 + n].decode(errors='replace')}")
    return opcode, body[pos:]


def read_string(body, pos):
    (n,) = struct.unpack_from(">H", body, pos)
    return body[pos + 2:pos + 2 + n].decode(), pos + 2 + n


try:
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        sock.sendall(frame(0, 0x01, struct.pack(">H", 1) + short_string("CQL_VERSION") + short_string("3.0.0")))
        opcode, _ = read_frame(sock)
        if opcode != 0x02:
            raise ValueError(f"STARTUP answered with opcode 0x{opcode:02x}, not READY (authentication on?)")
        query = b"SELECT release_version FROM system.local"
        sock.sendall(frame(1, 0x07, struct.pack(">i", len(query)) + query + struct.pack(">HB", 0x0001, 0)))
        opcode, body = read_frame(sock)
        if opcode != 0x08:
            raise ValueError(f"QUERY answered with opcode 0x{opcode:02x}, not RESULT")
        kind, flags, columns = struct.unpack_from(">iii", body, 0)
        if kind != 0x0002 or columns != 1:
            raise ValueError(f"unexpected result kind {kind} with {columns} columns")
        pos = 12
        if flags & 0x0002:  # has more pages: [bytes] paging state
            (n,) = struct.unpack_from(">i", body, pos)
            pos += 4 + max(n, 0)
        if not flags & 0x0004:  # metadata present
            if flags & 0x0001:  # global table spec
                _, pos = read_string(body, pos)
                _, pos = read_string(body, pos)
            else:
                _, pos = read_string(body, pos)
                _, pos = read_string(body, pos)
            _, pos = read_string(body, pos)  # column name
            pos += 2  # type id (varchar: no extra option value)
        (rows,) = struct.unpack_from(">i", body, pos)
        pos += 4
        if rows < 1:
            raise ValueError("system.local returned no row")
        (n,) = struct.unpack_from(">i", body, pos)
        print(body[pos + 4:pos + 4 + n].decode() if n >= 0 else "unknown")
except (OSError, ValueError, struct.error) as exc:
    print(f"{host}:{port}: {exc}", file=sys.stderr)
    sys.exit(1)
PY
}

# Log lines of the current start only: set by cmd_start before launching.
SYSTEM_LOG_START_LINE=1
STDOUT_LOG_START_LINE=1

print_logs() {
    local system_log=$LOG_DIR/system.log stdout_log=$LOG_DIR/stdout.log
    if [[ -s "$stdout_log" ]]; then
        printf '%s\n' "----- $stdout_log (this start) -----" >&2
        tail -n +"$STDOUT_LOG_START_LINE" "$stdout_log" | tail -n 30 >&2
    fi
    if [[ -s "$system_log" ]]; then
        printf '%s\n' "----- ERROR/WARN lines of $system_log (this start) -----" >&2
        tail -n +"$SYSTEM_LOG_START_LINE" "$system_log" | grep -E '^(ERROR|WARN)' | tail -n 20 >&2 || true
        printf '%s\n' "----- last 40 lines of $system_log -----" >&2
        tail -n 40 "$system_log" >&2
    fi
}

port_in_use() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# One start/stop at a time per home (fd 9; the daemon itself never inherits it).
take_lock() {
    exec 9>"$LOCK_FILE"
    if ! flock -n 9; then
        log "waiting up to $1 s for another start/stop of this home to finish ($LOCK_FILE)"
        flock -w "$1" 9 || die "another start/stop still holds $LOCK_FILE after $1 s"
    fi
}

# Options of a jvm*.options file: lines starting with '-', trailing blanks removed.
read_options() {
    local line
    while IFS= read -r line || [[ -n "$line" ]]; do
        line=${line%"${line##*[![:space:]]}"}
        [[ "$line" == -* ]] && printf '%s\n' "$line"
    done <"$1"
}

# --- commands --------------------------------------------------------------------------------

write_config() {
    mkdir -p "$CONF_DIR" "$LOG_DIR" "$DATA_DIR"/{data,commitlog,saved_caches,hints,cdc_raw} "$NODE_DIR/triggers"
    local template seeds
    seeds=$(node_address 1)
    template=$(<"$SCRIPT_DIR/cassandra.yaml")
    template=${template//@DATA_DIR@/$DATA_DIR}
    template=${template//@ADDRESS@/$CQL_HOST}
    template=${template//@SEEDS@/$seeds}
    template=${template//@INITIAL_TOKEN@/$INITIAL_TOKEN}
    template=${template//@HINTED_HANDOFF@/$HINTED_HANDOFF}
    printf '%s\n' "$template" >"$CONF_DIR/cassandra.yaml.tmp"
    mv "$CONF_DIR/cassandra.yaml.tmp" "$CONF_DIR/cassandra.yaml"
}

wait_for_cql() {
    local pid=$1 started=$2 version
    local deadline=$(( started + START_TIMEOUT ))
    while :; do
        if version=$(cql_probe 3 2>/dev/null); then
            log "CQL answers on $CQL_HOST:$CQL_PORT (Cassandra $version, pid $pid, $(( $(date +%s) - started )) s)"
            return 0
        fi
        if [[ -z "$(daemon_pids)" ]]; then
            print_logs
            die "$NODE_NAME (pid $pid) exited before CQL answered; logs in $LOG_DIR"
        fi
        if (( $(date +%s) >= deadline )); then
            print_logs
            die "CQL did not answer on $CQL_HOST:$CQL_PORT within ${START_TIMEOUT} s (pid $pid still running; '$0 stop' ends it)"
        fi
        sleep 1
    done
}

# Launch the selected node's daemon unless it runs already; sets LAUNCHED (1: launched, 0: was up),
# NODE_PID and NODE_STARTED for wait_for_cql.
launch_node() {
    local pids
    pids=$(daemon_pids)
    NODE_STARTED=$(date +%s)
    if [[ -n "$pids" ]]; then
        NODE_PID=$(head -n1 <<<"$pids")
        printf '%s\n' "$NODE_PID" >"$PID_FILE"
        LAUNCHED=0
        if (( NODES == 1 )); then log "already running (pid $NODE_PID)"
        else log "$NODE_NAME already running (pid $NODE_PID)"; fi
        return 0
    fi
    if cql_probe 2 >/dev/null 2>&1; then
        die "a CQL server this script did not start already answers on $CQL_HOST:$CQL_PORT; stop it first"
    fi
    local port
    for port in "$CQL_PORT" "$STORAGE_PORT"; do
        if port_in_use "$CQL_HOST" "$port"; then
            die "port $port on $CQL_HOST is in use by another process (not this script's Cassandra)"
        fi
    done
    if port_in_use 127.0.0.1 "$JMX_PORT"; then
        die "port $JMX_PORT on 127.0.0.1 (JMX of $NODE_NAME) is in use by another process"
    fi

    local java
    java=$(find_java "Cassandra 5.0" 11 17)
    fetch
    write_config
    rm -f "$PID_FILE"

    # JMX listens on 127.0.0.1 whatever the node's address: each node of a ring has its own port.
    local -a jvm_opts=() all_opts=()
    mapfile -t all_opts < <(read_options "$SCRIPT_DIR/jvm.options")
    local opt
    for opt in "${all_opts[@]}"; do
        [[ "$opt" == -Dcassandra.jmx.local.port=* ]] || jvm_opts+=("$opt")
    done
    jvm_opts+=("-Dcassandra.jmx.local.port=$JMX_PORT")
    if (( NODES > 1 )); then
        jvm_opts+=("-Xms256m" "-Xmx${LOCAL_CASSANDRA_RING_HEAP:-512m}")
    fi
    local -a extra=()
    # shellcheck disable=SC2206  # word splitting of the extra options is intended
    [[ -n "${CASSANDRA_JVM_EXTRA_OPTS:-}" ]] && extra=(${CASSANDRA_JVM_EXTRA_OPTS})
    local jamm
    jamm=$(compgen -G "$LIB_DIR/jamm-*.jar" | head -n1) || die "no jamm jar in $LIB_DIR"

    SYSTEM_LOG_START_LINE=$(( $( (cat "$LOG_DIR/system.log" 2>/dev/null || true) | wc -l) + 1 ))
    STDOUT_LOG_START_LINE=$(( $( (cat "$LOG_DIR/stdout.log" 2>/dev/null || true) | wc -l) + 1 ))
    {
        printf '\n===== %s starting Cassandra =====\n' "$(date -Is)"
    } >>"$LOG_DIR/stdout.log"
    # setsid + nohup: the node outlives the shell / pytest process that started it.
    (
        cd "$NODE_DIR"
        exec setsid nohup "$java" \
            "$MARKER" \
            "${jvm_opts[@]}" \
            -javaagent:"$jamm" \
            -XX:HeapDumpPath="$NODE_DIR" \
            -XX:ErrorFile="$LOG_DIR/hs_err_pid%p.log" \
            -Dcassandra.config="file://$CONF_DIR/cassandra.yaml" \
            -Dcassandra.storagedir="$DATA_DIR" \
            -Dcassandra.logdir="$LOG_DIR" \
            -Dcassandra.triggers_dir="$NODE_DIR/triggers" \
            -Dcassandra-foreground=yes \
            -Dlogback.configurationFile="file://$SCRIPT_DIR/logback.xml" \
            "${extra[@]}" \
            -cp "$CONF_DIR:$LIB_DIR/*" \
            "$MAIN_CLASS" \
            >>"$LOG_DIR/stdout.log" 2>&1 </dev/null 9>&-
    ) &
    local launched=$!
    sleep 0.5
    # $! is the JVM itself unless setsid had to fork; trust the command line scan.
    NODE_PID=$(daemon_pids | head -n1)
    NODE_PID=${NODE_PID:-$launched}
    printf '%s\n' "$NODE_PID" >"$PID_FILE"
    LAUNCHED=1
    if (( NODES == 1 )); then
        log "started Cassandra (pid $NODE_PID), logs in $LOG_DIR; waiting up to ${START_TIMEOUT} s for CQL"
    else
        log "started $NODE_NAME (pid $NODE_PID), logs in $LOG_DIR"
    fi
}

cmd_start() {
    take_lock "$START_TIMEOUT"
    save_layout
    local started k
    started=$(date +%s)
    # The seed first: the other nodes join through it.
    use_node 1
    launch_node
    wait_for_cql "$NODE_PID" "$NODE_STARTED"
    (( NODES > 1 )) || return 0
    # The others at once (no bootstrap: fixed tokens), then wait for each.
    local -a pids=() starts=() system_lines=() stdout_lines=()
    for (( k = 2; k <= NODES; k++ )); do
        use_node "$k"
        launch_node
        pids[k]=$NODE_PID starts[k]=$NODE_STARTED
        system_lines[k]=$SYSTEM_LOG_START_LINE stdout_lines[k]=$STDOUT_LOG_START_LINE
    done
    for (( k = 2; k <= NODES; k++ )); do
        use_node "$k"
        SYSTEM_LOG_START_LINE=${system_lines[k]} STDOUT_LOG_START_LINE=${stdout_lines[k]}
        wait_for_cql "${pids[k]}" "${starts[k]}"
    done
    log "ring of $NODES nodes up ($(node_address 1) to $(node_address "$NODES")) in $(( $(date +%s) - started )) s"
}

# Start node K of the ring (after stop-node / kill-node); waits until it answers CQL.
cmd_start_node() {
    take_lock "$START_TIMEOUT"
    use_node "$1"
    launch_node
    wait_for_cql "$NODE_PID" "$NODE_STARTED"
}

# TERM the given nodes' daemons, wait, then KILL what is left. $1: label; rest: node numbers.
stop_nodes() {
    local label=$1 k
    shift
    local pids=""
    for k in "$@"; do use_node "$k"; pids+=$(daemon_pids | tr '\n' ' '); done
    if [[ -z "${pids// /}" ]]; then
        for k in "$@"; do use_node "$k"; rm -f "$PID_FILE"; done
        log "not running"
        return 0
    fi
    log "stopping $label (pid ${pids% })"
    # shellcheck disable=SC2086
    kill -TERM $pids 2>/dev/null || true
    local deadline=$(( $(date +%s) + STOP_TIMEOUT ))
    while [[ -n "$(alive "$pids")" ]] && (( $(date +%s) < deadline )); do
        sleep 0.5
    done
    pids=$(alive "$pids")
    if [[ -n "${pids// /}" ]]; then
        log "still running after ${STOP_TIMEOUT} s, sending SIGKILL to ${pids% }"
        # shellcheck disable=SC2086
        kill -KILL $pids 2>/dev/null || true
        deadline=$(( $(date +%s) + 15 ))
        while [[ -n "$(alive "$pids")" ]] && (( $(date +%s) < deadline )); do
            sleep 0.2
        done
        [[ -z "$(alive "$pids")" ]] || die "could not stop $label: $(alive "$pids")"
    fi
    for k in "$@"; do use_node "$k"; rm -f "$PID_FILE"; done
    log "stopped"
}

cmd_stop() {
    take_lock "$(( STOP_TIMEOUT + 30 ))"
    if (( NODES == 1 )); then
        stop_nodes Cassandra 1
    else
        stop_nodes "the ring of $NODES nodes" $(seq 1 "$NODES")
    fi
}

cmd_stop_node() {
    take_lock "$(( STOP_TIMEOUT + 30 ))"
    use_node "$1"
    stop_nodes "$NODE_NAME" "$1"
}

# SIGKILL node K: no drain, no flush, as a crash or a pulled plug.
cmd_kill_node() {
    use_node "$1"
    local pids
    pids=$(daemon_pids | tr '\n' ' ')
    if [[ -z "${pids// /}" ]]; then
        rm -f "$PID_FILE"
        log "$NODE_NAME not running"
        return 0
    fi
    # shellcheck disable=SC2086
    kill -KILL $pids 2>/dev/null || true
    local deadline=$(( $(date +%s) + 15 ))
    while [[ -n "$(alive "$pids")" ]] && (( $(date +%s) < deadline )); do
        sleep 0.1
    done
    [[ -z "$(alive "$pids")" ]] || die "$NODE_NAME (pid ${pids% }) survived SIGKILL"
    rm -f "$PID_FILE"
    log "killed $NODE_NAME (pid ${pids% }) with SIGKILL"
}

# One node's status line; returns 0 running, 3 stopped.
node_status() {
    local pids pid version prefix=""
    (( NODES > 1 )) && prefix="$NODE_NAME: "
    pids=$(daemon_pids)
    if [[ -z "$pids" ]]; then
        rm -f "$PID_FILE"
        log "${prefix}stopped"
        return 3
    fi
    pid=$(head -n1 <<<"$pids")
    if version=$(cql_probe 3 2>/dev/null); then
        log "${prefix}running (pid $pid), CQL answers on $CQL_HOST:$CQL_PORT (Cassandra $version)"
    else
        log "${prefix}running (pid $pid), CQL not answering yet on $CQL_HOST:$CQL_PORT"
    fi
    return 0
}

cmd_status() {
    local k running=0 status
    for (( k = 1; k <= NODES; k++ )); do
        use_node "$k"
        status=0
        node_status || status=$?
        (( status == 0 )) && running=$(( running + 1 ))
    done
    if (( running == NODES )); then return 0; fi
    if (( running == 0 )); then return 3; fi
    log "$running of $NODES nodes running"
    return 4
}

cmd_nodetool() {
    local java
    java=$(find_java "Cassandra 5.0" 11 17)
    jars_fresh cassandra-all || die "jars not fetched; run '$0 fetch' or '$0 start'"
    use_node "${LOCAL_CASSANDRA_NODE:-1}"
    local -a opts=()
    mapfile -t opts < <(read_options "$SCRIPT_DIR/jvm-clients.options")
    mkdir -p "$LOG_DIR"
    # user.home: nodetool keeps its command history in ~/.cassandra; keep it in <home>.
    exec "$java" "${opts[@]}" -Duser.home="$HOME_DIR" -Dcassandra.logdir="$LOG_DIR" \
        -Dlogback.configurationFile="file://$SCRIPT_DIR/logback-tools.xml" \
        -cp "$LIB_DIR/*" org.apache.cassandra.tools.NodeTool -h 127.0.0.1 -p "$JMX_PORT" "$@"
}

fetch_stress() {
    [[ -x "$STRESS_DIR/tools/bin/cassandra-stress" ]] && return 0
    local mvn=${MVN:-mvn} download=$HOME_DIR/tools/download
    command -v "${mvn%% *}" >/dev/null || die "Maven ('$mvn') is needed to fetch cassandra-stress"
    log "fetching org.apache.cassandra:apache-cassandra:$STRESS_VERSION:tar.gz:bin for cassandra-stress"
    rm -rf "$download" "$STRESS_DIR"
    mkdir -p "$download"
    # shellcheck disable=SC2086  # MVN may carry options
    $mvn -q -B -Dstyle.color=never -f "$SCRIPT_DIR/pom.xml" dependency:copy \
        -Dartifact="org.apache.cassandra:apache-cassandra:$STRESS_VERSION:tar.gz:bin" \
        -DoutputDirectory="$download" 2>&1 | sed -e 's/\x1b\[[0-9;]*m//g' -e '/^$/d' \
        || die "Maven could not fetch the Cassandra $STRESS_VERSION tarball"
    tar -xzf "$download/apache-cassandra-$STRESS_VERSION-bin.tar.gz" -C "$HOME_DIR/tools"
    rm -rf "$download"
    [[ -x "$STRESS_DIR/tools/bin/cassandra-stress" ]] || die "no tools/bin/cassandra-stress in the tarball"
}

cmd_stress() {
    local java
    java=$(find_java "Cassandra 5.0" 11 17)
    fetch_stress
    # The 3.11 launcher takes `java` from JAVA_HOME or PATH; give it the JDK found above.
    JAVA_HOME=$(dirname "$(dirname "$java")") exec "$STRESS_DIR/tools/bin/cassandra-stress" "$@"
}

usage() {
    sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

case "${1:-}" in
    --nodes) [[ $# -ge 2 ]] || usage; NODES=$2; shift 2 ;;
    --nodes=*) NODES=${1#--nodes=}; shift ;;
esac
load_layout

node_argument() {
    [[ $# -eq 1 && "$1" =~ ^[1-9][0-9]*$ ]] || usage_error "give one node number, 1 to $NODES"
}

case "${1:-}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    restart) cmd_stop; cmd_start ;;
    start-node) shift; node_argument "$@"; cmd_start_node "$1" ;;
    stop-node) shift; node_argument "$@"; cmd_stop_node "$1" ;;
    kill-node) shift; node_argument "$@"; cmd_kill_node "$1" ;;
    fetch) fetch; log "jars ready in $LIB_DIR" ;;
    nodetool) shift; cmd_nodetool "$@" ;;
    stress) shift; cmd_stress "$@" ;;
    *) usage ;;
esac
