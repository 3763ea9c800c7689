#!/usr/bin/env bash
# Fetch the Delta Lake jars (and their dependencies that Spark does not ship) with Maven, into
# .jars/; or regenerate the lock file that pins them.
#
#   conf/jars/fetch-jars.sh            # fetch once; later runs return at once (no Maven start)
#   conf/jars/fetch-jars.sh --force    # fetch again even if .jars/ looks complete
#   conf/jars/fetch-jars.sh --lock     # rewrite feast_spark/jars.lock from pom.xml (after a bump)
#
# You rarely need this script: without .jars/, every job gets the jars pinned in
# feast_spark/jars.lock from the jar cache (~/.cache/feast-spark/jars/<digest>/), which
# feast_spark/jars.py fills from Maven Central once per machine, checksums verified. Use it
# where Maven is how you reach jars (a settings.xml with a proxy or credentials), or to pre-seed
# an air-gapped machine: fill .jars/ (or FEAST_SPARK_JARS_DIR) here, copy it to the same path on
# every node. (`python -m feast_spark.jars --dest DIR` does the same without Maven.)
#
# The list of jars is conf/jars/pom.xml; feast_spark/jars.lock is what it resolves to (Maven
# coordinate, size, sha256 of each jar). After changing the pom, run --lock and commit both.
#
# Environment:
#   FEAST_SPARK_JARS_DIR   where to put the jars (default: <repo>/.jars, git-ignored)
#   MAVEN                  the Maven command (default: mvn)
#   MAVEN_ARGS             extra Maven arguments, e.g. "-o" (offline) or "-s my-settings.xml"
#   PYTHON                 the Python that writes the lock (default: <repo>/.venv/bin/python)
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
lock=false
case "${1:-}" in
  "") ;;
  --force) force=true ;;
  --lock) lock=true ;;
  -h | --help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) echo "fetch-jars.sh: unknown argument '$1' (use --force, --lock or --help)" >&2; exit 2 ;;
esac

py=${PYTHON:-$root/.venv/bin/python}
[[ -x $py ]] || py=$(command -v python3 || true)

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

if ! $force && ! $lock && is_complete; then
  exit 0
fi

command -v "$maven" >/dev/null || {
  echo "fetch-jars.sh: '$maven' not found; install Maven (apt-get install maven) or set MAVEN" >&2
  exit 1
}

if $lock; then
  # The exact jars the pom resolves to, with their paths in Maven's local repository.
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  # shellcheck disable=SC2086  # MAVEN_ARGS is a list of words on purpose
  if ! "$maven" -q -B ${MAVEN_ARGS:-} -f "$pom" dependency:list -DincludeScope=runtime \
    -DoutputAbsoluteArtifactFilename=true -DoutputFile="$tmp/list.txt" >"$tmp/maven.log" 2>&1; then
    cat "$tmp/maven.log" >&2
    echo "fetch-jars.sh: Maven failed to list the jars of $pom" >&2
    exit 1
  fi
  PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}" "$py" -m feast_spark.jars \
    --lock-from-maven "$tmp/list.txt" >"$tmp/jars.lock"
  mv "$tmp/jars.lock" "$root/feast_spark/jars.lock"
  echo "fetch-jars.sh: $(grep -vc '^#' "$root/feast_spark/jars.lock") jars pinned in feast_spark/jars.lock"
  exit 0
fi

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
