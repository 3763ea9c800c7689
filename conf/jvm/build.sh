#!/usr/bin/env bash
# Builds feast_spark/feast-spark-jvm.jar from conf/jvm/src: feast-spark's own JVM classes
# (feature statistics fed by generated code). The jar is committed, so users need no JDK;
# run this after changing a .java file (tests/test_jvm_jar.py checks the jar matches).
#
#   bash conf/jvm/build.sh [OUTPUT_JAR]
#
# Needs javac 17 and pyspark (compiled against its jars, for Java 17). The jar is reproducible:
# sorted entries, one fixed timestamp.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
output=${1:-$root/feast_spark/feast-spark-jvm.jar}
python=${PYTHON:-$root/.venv/bin/python}
[[ -x $python ]] || python=python3
pyspark_jars=$("$python" -c 'import os, pyspark; print(os.path.join(os.path.dirname(pyspark.__file__), "jars"))')
classes=$(mktemp -d)
trap 'rm -rf "$classes"' EXIT
find "$here/src" -name '*.java' | sort > "$classes/sources"
javac --release 17 -nowarn -Xlint:none -encoding UTF-8 -cp "$pyspark_jars/*" -d "$classes/out" "@$classes/sources"
(cd "$classes/out" && find . -name '*.class' | sort > ../entries &&
  jar --create --date=2026-01-01T00:00:00Z --no-manifest --file "$classes/built.jar" @../entries)
mv "$classes/built.jar" "$output"
echo "$output"
