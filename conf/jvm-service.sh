# Shared by conf/cassandra/local-cassandra.sh and conf/kafka/local-kafka.sh: a local JVM service
# whose jars come from Maven Central (a pom.xml beside the script) and whose processes are found by
# a marker argument on their command line. Sourced, never run. The caller defines log and die and
# sets SCRIPT_DIR (the folder of its pom.xml), LIB_DIR, STAMP_FILE, MAIN_CLASS and MARKER.

# find_java NAME VERSIONS...: the java to run NAME with, if its major version is one of VERSIONS
# ("17+" means 17 or later).
find_java() {
    local name=$1 java version major wanted
    shift
    if [[ -n "${JAVA_HOME:-}" ]]; then
        java=$JAVA_HOME/bin/java
        [[ -x "$java" ]] || die "JAVA_HOME=$JAVA_HOME has no bin/java"
    else
        java=$(command -v java) || die "no java on PATH; set JAVA_HOME to a JDK for $name ($*)"
    fi
    version=$("$java" -version 2>&1 | awk -F'"' '/version/ {print $2; exit}')
    major=${version%%.*}
    for wanted in "$@"; do
        if [[ "$wanted" == *+ ]]; then
            (( major >= ${wanted%+} )) 2>/dev/null && { printf '%s\n' "$java"; return 0; }
        elif [[ "$major" == "$wanted" ]]; then
            printf '%s\n' "$java"; return 0
        fi
    done
    die "$name needs Java $*, $java is '$version'; set JAVA_HOME"
}

pom_sha() { sha256sum "$SCRIPT_DIR/pom.xml" | cut -d' ' -f1; }

# jars_fresh ARTIFACT: the jars in LIB_DIR were fetched from the current pom.xml.
jars_fresh() {
    [[ -f "$STAMP_FILE" && "$(cat "$STAMP_FILE")" == "$(pom_sha)" ]] \
        && compgen -G "$LIB_DIR/$1-*.jar" >/dev/null
}

# fetch_jars ARTIFACT NAME RUNNING_PIDS: the pom's runtime jars into LIB_DIR (atomically), unless
# fresh; refused while the service runs on the old ones (RUNNING_PIDS non-empty).
fetch_jars() {
    local artifact=$1 name=$2 running=$3
    jars_fresh "$artifact" && return 0
    [[ -z "$running" ]] \
        || die "jars in $LIB_DIR do not match $SCRIPT_DIR/pom.xml but the $name is running; stop it first"
    local mvn=${MVN:-mvn}
    command -v "${mvn%% *}" >/dev/null || die "Maven ('$mvn') is needed to fetch the $name's jars"
    log "fetching $artifact and its runtime dependencies into $LIB_DIR"
    rm -rf "$LIB_DIR.tmp"
    # shellcheck disable=SC2086  # MVN may carry options
    $mvn -q -B -Dstyle.color=never -f "$SCRIPT_DIR/pom.xml" dependency:copy-dependencies \
        -DoutputDirectory="$LIB_DIR.tmp" -DincludeScope=runtime 2>&1 \
        | sed -e 's/\x1b\[[0-9;]*m//g' -e '/^$/d' \
        || die "Maven could not fetch the $name's jars (see above)"
    compgen -G "$LIB_DIR.tmp/$artifact-*.jar" >/dev/null || die "Maven fetched no $artifact jar"
    pom_sha >"$LIB_DIR.tmp/.fetched-pom.sha256"
    rm -rf "$LIB_DIR"
    mv "$LIB_DIR.tmp" "$LIB_DIR"
    log "fetched $(find "$LIB_DIR" -name '*.jar' | wc -l) jars"
}

# Pids of the processes whose command line carries both $MARKER and $MAIN_CLASS.
marked_pids() {
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

# Those of the given pids whose process still runs $MAIN_CLASS (a pid not reused since).
alive() {
    local pid arg
    for pid in $1; do
        while IFS= read -r -d '' arg; do
            if [[ "$arg" == "$MAIN_CLASS" ]]; then printf '%s ' "$pid"; break; fi
        done 2>/dev/null <"/proc/$pid/cmdline" || true
    done
}
