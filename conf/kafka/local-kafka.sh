#!/usr/bin/env bash
# Local Apache Kafka 4.1 broker for feast-spark stream development and tests: one KRaft node
# (broker and controller in one JVM) on loopback, no ZooKeeper.
#
#   conf/kafka/local-kafka.sh COMMAND
#   fetch     fetch kafka_2.13 + runtime jars into <home>/lib (Maven)
#   start     fetch if needed, format the log folder once, start, wait until the broker answers
#             (idempotent)
#   stop      stop the broker; no process is left behind (idempotent)
#   status    "running" (exit 0), "stopped" (exit 3)
#   restart   stop, then start
#
# The broker listens on 127.0.0.1:$LOCAL_KAFKA_PORT (default 9092), its controller on
# 127.0.0.1:$LOCAL_KAFKA_CONTROLLER_PORT (default 9093). Topics are created on first use
# (auto.create.topics.enable), one partition by default, replication factor 1. There is no Kafka
# binary tarball route here: the broker runs as `java ... kafka.Kafka` on the jars of
# org.apache.kafka:kafka_2.13 (version pinned in conf/kafka/pom.xml).
#
# Layout of <home> (git-ignored): lib/ (jars), server.properties (generated), data/ (the log and
# KRaft metadata; formatted once), logs/server.log, logs/stdout.log, kafka.pid.
#
# Environment:
#   LOCAL_KAFKA_HOME             state folder (default: <repo>/.kafka)
#   LOCAL_KAFKA_PORT             broker port (default 9092)
#   LOCAL_KAFKA_CONTROLLER_PORT  KRaft controller port (default 9093)
#   JAVA_HOME                    JDK 17 or later (default: `java` on PATH)
#   KAFKA_START_TIMEOUT          seconds to wait for the broker on start (default: 120)
#   KAFKA_STOP_TIMEOUT           seconds to wait after SIGTERM before SIGKILL (default: 30)
#   KAFKA_HEAP_OPTS              JVM heap options (default: -Xms128m -Xmx512m)
#   MVN                          Maven command (default: mvn)
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$SCRIPT_DIR/../.." && pwd)

HOME_DIR=${LOCAL_KAFKA_HOME:-$REPO_DIR/.kafka}
mkdir -p "$HOME_DIR"
HOME_DIR=$(cd "$HOME_DIR" && pwd)
LIB_DIR=$HOME_DIR/lib
STAMP_FILE=$LIB_DIR/.fetched-pom.sha256
DATA_DIR=$HOME_DIR/data
LOG_DIR=$HOME_DIR/logs
PID_FILE=$HOME_DIR/kafka.pid
CONFIG_FILE=$HOME_DIR/server.properties
LOCK_FILE=$HOME_DIR/.lock

HOST=127.0.0.1
PORT=${LOCAL_KAFKA_PORT:-9092}
CONTROLLER_PORT=${LOCAL_KAFKA_CONTROLLER_PORT:-9093}
START_TIMEOUT=${KAFKA_START_TIMEOUT:-120}
STOP_TIMEOUT=${KAFKA_STOP_TIMEOUT:-30}
HEAP_OPTS=${KAFKA_HEAP_OPTS:--Xms128m -Xmx512m}
MAIN_CLASS=kafka.Kafka
# Unique argument on the broker's command line: finds this home's broker without a pid file.
MARKER="-Dfeast_spark.local_kafka=$HOME_DIR"

log() { printf 'local-kafka: %s\n' "$*"; }
die() { printf 'local-kafka: error: %s\n' "$*" >&2; exit 1; }

[[ "$PORT" =~ ^[0-9]+$ && "$CONTROLLER_PORT" =~ ^[0-9]+$ && "$PORT" != "$CONTROLLER_PORT" ]] \
    || { printf 'local-kafka: error: ports %s and %s must be two different numbers\n' \
         "$PORT" "$CONTROLLER_PORT" >&2; exit 2; }

find_java() {
    local java version
    if [[ -n "${JAVA_HOME:-}" ]]; then
        java=$JAVA_HOME/bin/java
        [[ -x "$java" ]] || die "JAVA_HOME=$JAVA_HOME has no bin/java"
    else
        java=$(command -v java) || die "no java on PATH; set JAVA_HOME to a JDK 17 or later"
    fi
    version=$("$java" -version 2>&1 | awk -F'"' '/version/ {print $2; exit}')
    (( ${version%%.*} >= 17 )) 2>/dev/null || die "Kafka 4 needs Java 17 or later, $java is '$version'"
    printf '%s\n' "$java"
}

# --- jars ------------------------------------------------------------------------------------

pom_sha() { sha256sum "$SCRIPT_DIR/pom.xml" | cut -d' ' -f1; }

jars_fresh() {
    [[ -f "$STAMP_FILE" && "$(cat "$STAMP_FILE")" == "$(pom_sha)" ]] \
        && compgen -G "$LIB_DIR/kafka_2.13-*.jar" >/dev/null
}

fetch() {
    jars_fresh && return 0
    [[ -z "$(broker_pids)" ]] || die "jars in $LIB_DIR do not match conf/kafka/pom.xml but the broker is running; stop it first"
    local mvn=${MVN:-mvn}
    command -v "${mvn%% *}" >/dev/null || die "Maven ('$mvn') is needed to fetch the Kafka jars"
    log "fetching kafka_2.13 and its runtime dependencies into $LIB_DIR"
    rm -rf "$LIB_DIR.tmp"
    # shellcheck disable=SC2086  # MVN may carry options
    $mvn -q -B -Dstyle.color=never -f "$SCRIPT_DIR/pom.xml" dependency:copy-dependencies \
        -DoutputDirectory="$LIB_DIR.tmp" -DincludeScope=runtime 2>&1 \
        | sed -e 's/\x1b\[[0-9;]*m//g' -e '/^$/d' \
        || die "Maven could not fetch the Kafka jars (see above)"
    compgen -G "$LIB_DIR.tmp/kafka_2.13-*.jar" >/dev/null || die "Maven fetched no kafka_2.13 jar"
    pom_sha >"$LIB_DIR.tmp/.fetched-pom.sha256"
    rm -rf "$LIB_DIR"
    mv "$LIB_DIR.tmp" "$LIB_DIR"
    log "fetched $(find "$LIB_DIR" -name '*.jar' | wc -l) jars"
}

# --- processes -------------------------------------------------------------------------------

# Pids of this home's broker: the command line carries $MARKER and $MAIN_CLASS.
broker_pids() {
    local cmdline pid arg has_marker has_main
    for cmdline in /proc/[0-9]*/cmdline; do
        pid=${cmdline#/proc/}; pid=${pid%/cmdline}
        has_marker=0; has_main=0
        while IFS= read -r -d '' arg; do
            [[ "$arg" == "$MARKER" ]] && has_marker=1
            [[ "$arg" == "$MAIN_CLASS" ]] && has_main=1
        done 2>/dev/null <"$cmdline" || true
        if (( has_marker && has_main )); then printf '%s\n' "$pid"; fi
    done
}

port_in_use() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

take_lock() {
    exec 9>"$LOCK_FILE"
    flock -w "$1" 9 || die "another start/stop still holds $LOCK_FILE after $1 s"
}

write_config() {
    mkdir -p "$DATA_DIR" "$LOG_DIR"
    cat >"$CONFIG_FILE.tmp" <<EOF
# Generated by conf/kafka/local-kafka.sh; edits are overwritten at the next start.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$HOST:$CONTROLLER_PORT
listeners=PLAINTEXT://$HOST:$PORT,CONTROLLER://$HOST:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$HOST:$PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$DATA_DIR
num.partitions=1
auto.create.topics.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
log.retention.hours=24
EOF
    mv "$CONFIG_FILE.tmp" "$CONFIG_FILE"
}

# Format the log folder once (KRaft needs a cluster id in meta.properties before the first start).
format_storage() {
    [[ -f "$DATA_DIR/meta.properties" ]] && return 0
    local java=$1 cluster_id
    cluster_id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')
    "$java" -Dlog4j2.configurationFile="file://$SCRIPT_DIR/log4j2-tools.properties" \
        -cp "$LIB_DIR/*" kafka.tools.StorageTool format -t "$cluster_id" -c "$CONFIG_FILE" \
        >>"$LOG_DIR/stdout.log" 2>&1 || { tail -n 20 "$LOG_DIR/stdout.log" >&2; die "could not format $DATA_DIR"; }
}

print_logs() {
    printf '%s\n' "----- last 30 lines of $LOG_DIR/stdout.log -----" >&2
    tail -n 30 "$LOG_DIR/stdout.log" >&2 || true
    printf '%s\n' "----- last 30 lines of $LOG_DIR/server.log -----" >&2
    tail -n 30 "$LOG_DIR/server.log" >&2 || true
}

cmd_start() {
    take_lock "$START_TIMEOUT"
    local pids
    pids=$(broker_pids)
    if [[ -n "$pids" ]]; then
        printf '%s\n' "$(head -n1 <<<"$pids")" >"$PID_FILE"
        log "already running (pid $(head -n1 <<<"$pids")) on $HOST:$PORT"
        return 0
    fi
    local port
    for port in "$PORT" "$CONTROLLER_PORT"; do
        port_in_use "$port" && die "port $port on $HOST is in use by another process (not this script's broker); set LOCAL_KAFKA_PORT / LOCAL_KAFKA_CONTROLLER_PORT"
    done
    local java
    java=$(find_java)
    fetch
    write_config
    format_storage "$java"
    rm -f "$PID_FILE"
    local started server_lines
    started=$(date +%s)
    server_lines=$(( $( (cat "$LOG_DIR/server.log" 2>/dev/null || true) | wc -l) + 1 ))
    printf '\n===== %s starting Kafka =====\n' "$(date -Is)" >>"$LOG_DIR/stdout.log"
    # shellcheck disable=SC2086  # HEAP_OPTS is a list of words on purpose
    (
        cd "$HOME_DIR"
        exec setsid nohup "$java" "$MARKER" $HEAP_OPTS -XX:+UseG1GC \
            -Djava.awt.headless=true \
            -Dkafka.logs.dir="$LOG_DIR" \
            -Dlog4j2.configurationFile="file://$SCRIPT_DIR/log4j2.properties" \
            -cp "$LIB_DIR/*" "$MAIN_CLASS" "$CONFIG_FILE" \
            >>"$LOG_DIR/stdout.log" 2>&1 </dev/null 9>&-
    ) &
    sleep 0.5
    local pid
    pid=$(broker_pids | head -n1)
    [[ -n "$pid" ]] && printf '%s\n' "$pid" >"$PID_FILE"
    log "started Kafka (pid ${pid:-?}), logs in $LOG_DIR; waiting up to ${START_TIMEOUT} s"
    local deadline=$(( started + START_TIMEOUT ))
    while :; do
        if port_in_use "$PORT" && tail -n +"$server_lines" "$LOG_DIR/server.log" 2>/dev/null \
            | grep -q 'Kafka Server started'; then
            log "broker answers on $HOST:$PORT (pid $pid, $(( $(date +%s) - started )) s)"
            return 0
        fi
        if [[ -z "$(broker_pids)" ]]; then
            print_logs
            die "the broker exited before it answered; logs in $LOG_DIR"
        fi
        if (( $(date +%s) >= deadline )); then
            print_logs
            die "the broker did not answer on $HOST:$PORT within ${START_TIMEOUT} s ('$0 stop' ends it)"
        fi
        sleep 0.5
    done
}

alive() {
    local pid arg
    for pid in $1; do
        while IFS= read -r -d '' arg; do
            if [[ "$arg" == "$MAIN_CLASS" ]]; then printf '%s ' "$pid"; break; fi
        done 2>/dev/null <"/proc/$pid/cmdline" || true
    done
}

cmd_stop() {
    take_lock "$(( STOP_TIMEOUT + 30 ))"
    local pids
    pids=$(broker_pids | tr '\n' ' ')
    if [[ -z "${pids// /}" ]]; then
        rm -f "$PID_FILE"
        log "not running"
        return 0
    fi
    log "stopping Kafka (pid ${pids% })"
    # shellcheck disable=SC2086
    kill -TERM $pids 2>/dev/null || true
    local deadline=$(( $(date +%s) + STOP_TIMEOUT ))
    while [[ -n "$(alive "$pids")" ]] && (( $(date +%s) < deadline )); do sleep 0.3; done
    if [[ -n "$(alive "$pids")" ]]; then
        log "still running after ${STOP_TIMEOUT} s, sending SIGKILL to ${pids% }"
        # shellcheck disable=SC2086
        kill -KILL $pids 2>/dev/null || true
        deadline=$(( $(date +%s) + 15 ))
        while [[ -n "$(alive "$pids")" ]] && (( $(date +%s) < deadline )); do sleep 0.2; done
        [[ -z "$(alive "$pids")" ]] || die "could not stop Kafka: $(alive "$pids")"
    fi
    rm -f "$PID_FILE"
    log "stopped"
}

cmd_status() {
    local pids
    pids=$(broker_pids)
    if [[ -z "$pids" ]]; then
        rm -f "$PID_FILE"
        log "stopped"
        return 3
    fi
    if port_in_use "$PORT"; then
        log "running (pid $(head -n1 <<<"$pids")), broker on $HOST:$PORT"
    else
        log "running (pid $(head -n1 <<<"$pids")), not answering yet on $HOST:$PORT"
    fi
    return 0
}

case "${1:-}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    restart) cmd_stop; cmd_start ;;
    fetch) fetch; log "jars ready in $LIB_DIR" ;;
    *) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
