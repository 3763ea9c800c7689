#!/usr/bin/env bash
# Fetch the Delta Lake jars (and their dependencies that Spark does not ship) into .jars/.
#
#   conf/jars/fetch-jars.sh            # fetch once; later runs return at once (no Maven start)
#   conf/jars/fetch-jars.sh --force    # fetch again even if .jars/ looks complete
#
# The list of jars is conf/jars/pom.xml. With .jars/ in place, feast_spark.spark.session and
# ./spark-submit.sh give Spark these files with spark.jars instead of resolving
# spark.jars.packages from Maven Central at every new machine: the way to run on air-gapped
# clusters (copy .jars/ next to the code, or point FEAST_SPARK_JARS_DIR at it).
#
# Environment:
#   FEAST_SPARK_JARS_DIR   where to put the jars (default: <repo>/.jars, git-ignored)
#   MAVEN                  the Maven command (default: mvn)
#   MAVEN_ARGS             extra Maven arguments, e.g. "-o" (offline) or "-s my-settings.xml"
#
# Idempotent: a stamp file records the pom's checksum and the jar names; when both still match,
# nothing runs. When the pom changes, the old jars are replaced as a whole.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
pom=$here/pom.xml
out=${FEAST_SPARK_JARS_DIR:-$root/.jars}
stamp=$out/.fetched
maven=${MAVEN:-mvn}

force=false
case "${1:-}" in
  "") ;;
  --force) force=true ;;
  -h | --help) sed -n '2,19p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) echo "fetch-jars.sh: unknown argument '$1' (use --force or --help)" >&2; exit 2 ;;
esac

if command -v sha256sum >/dev/null; then
  pom_sum=$(sha256sum "$pom" | cut -d' ' -f1)
else # macOS
  pom_sum=$(shasum -a 256 "$pom" | cut -d' ' -f1)
fi

# Complete when the stamp names this pom and every jar it lists is still there.
is_complete() {
  [[ -f $stamp ]] || return 1
  [[ $(head -n1 "$stamp") == "$pom_sum" ]] || return 1
  local jar count=0
  while IFS= read -r jar; do
    [[ -f $out/$jar ]] || return 1
    count=$((count + 1))
  done < <(tail -n +2 "$stamp")
  ((count > 0))
}

if ! $force && is_complete; then
  exit 0
fi

command -v "$maven" >/dev/null || {
  echo "fetch-jars.sh: '$maven' not found; install Maven (apt-get install maven) or set MAVEN" >&2
  exit 1
}

mkdir -p "$out"
tmp=$(mktemp -d "$out/.fetch.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# Maven's output is shown only when it fails.
# shellcheck disable=SC2086  # MAVEN_ARGS is a list of words on purpose
if ! "$maven" -q -B ${MAVEN_ARGS:-} -f "$pom" dependency:copy-dependencies \
  -DoutputDirectory="$tmp" -DincludeScope=runtime >"$tmp/maven.log" 2>&1; then
  cat "$tmp/maven.log" >&2
  echo "fetch-jars.sh: Maven failed to copy the jars of $pom" >&2
  exit 1
fi

shopt -s nullglob
new_jars=("$tmp"/*.jar)
if ((${#new_jars[@]} == 0)); then
  echo "fetch-jars.sh: Maven copied no jar from $pom" >&2
  exit 1
fi

# Replace the previous set as a whole, so a version bump leaves no stale jar behind.
rm -f "$out"/*.jar "$stamp"
mv "${new_jars[@]}" "$out"/
{
  echo "$pom_sum"
  for jar in "${new_jars[@]}"; do basename "$jar"; done
} >"$stamp"

# Guard: warn when a fetched jar is also in pyspark/jars (an exclusion is missing from the pom).
py=${PYTHON:-$root/.venv/bin/python}
[[ -x $py ]] || py=$(command -v python3 || true)
if [[ -n $py ]] && spark_jars=$("$py" -c 'import os, pyspark; print(os.path.join(os.path.dirname(pyspark.__file__), "jars"))' 2>/dev/null); then
  for jar in "$out"/*.jar; do
    name=$(basename "$jar" | sed -E 's/-[0-9][^/]*\.jar$//')
    dupes=("$spark_jars/$name"-[0-9]*.jar)
    if ((${#dupes[@]})); then
      echo "fetch-jars.sh: warning: $(basename "$jar") duplicates Spark's $(basename "${dupes[0]}"); exclude it in $pom and spark.jars.excludes" >&2
    fi
  done
fi

echo "fetch-jars.sh: $(tail -n +2 "$stamp" | wc -l) jars in $out"
