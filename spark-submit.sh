#!/usr/bin/env bash
# Run a feast-spark job with pyspark's own spark-submit, Delta Lake and conf/spark-defaults.conf.
#
# Usage: ./spark-submit.sh [spark-submit options...] JOB [job args...]
#
#   JOB       a job name (smoke runs jobs/smoke.py) or the path of a .py file
#   options   any spark-submit option, passed through as given:
#             --master local[*] | spark://host:7077 | yarn | k8s://https://host:443,
#             --deploy-mode client|cluster, --conf key=value, --name, --driver-memory, ...
#
# Example: ./spark-submit.sh --master 'local[2]' smoke /tmp/feast-spark-smoke
#
# What it adds, before your options (so yours win where spark-submit keeps the last value):
#   --properties-file $FEAST_SPARK_CONF_DIR/spark-defaults.conf (default: conf/)
#   --jars    the Delta jars as local files: $FEAST_SPARK_JARS_DIR or .jars/ when filled, else
#             the pinned set of feast_spark/jars.lock, downloaded once per machine into
#             ~/.cache/feast-spark/jars/ (FEAST_SPARK_JARS_MODE=packages: Ivy's --packages
#             instead), and feast-spark's own jar (feast_spark/feast-spark-jvm.jar). Your own
#             --jars / --packages are added to these, not replaced.
#   --py-files build/spark-submit/feast_spark-<hash of its sources>.zip (plus yours)
#   --name    feast-spark-JOB
# Environment: PYSPARK_PYTHON and PYSPARK_DRIVER_PYTHON default to .venv/bin/python (else
# python3); on a cluster set PYSPARK_PYTHON to the Python the executors have. SPARK_HOME is set to
# that Python's pyspark, so the pinned Spark runs whatever SPARK_HOME said before.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
prog=spark-submit.sh

usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'
}

die() { # die STATUS MESSAGE: one line on stderr
  echo "$prog: $2" >&2
  exit "$1"
}

available_jobs() {
  local file name names=()
  for file in "$root"/jobs/*.py; do
    [[ -e $file ]] || continue
    name=$(basename "$file" .py)
    [[ $name == _* ]] || names+=("$name")
  done
  local IFS=,
  local joined="${names[*]:-none}"
  echo "${joined//,/, }"
}

join_csv() { # join_csv A B: "A,B" without empty parts
  if [[ -n $1 && -n $2 ]]; then echo "$1,$2"; else echo "$1$2"; fi
}

# --- spark-submit options, up to the first argument that is not an option (the job) -----------
spark_opts=()
user_jars=""
user_packages=""
user_py_files=""
while (($#)); do
  case $1 in
    -h | --help) usage; exit 0 ;;
    --jars) (($# >= 2)) || die 2 "option $1 needs a value"; user_jars=$2; shift 2 ;;
    --jars=*) user_jars=${1#*=}; shift ;;
    --packages) (($# >= 2)) || die 2 "option $1 needs a value"; user_packages=$2; shift 2 ;;
    --packages=*) user_packages=${1#*=}; shift ;;
    --py-files) (($# >= 2)) || die 2 "option $1 needs a value"; user_py_files=$2; shift 2 ;;
    --py-files=*) user_py_files=${1#*=}; shift ;;
    # spark-submit's options without a value
    -v | --verbose | --supervise) spark_opts+=("$1"); shift ;;
    --*=*) spark_opts+=("$1"); shift ;;
    -*) (($# >= 2)) || die 2 "option $1 needs a value"; spark_opts+=("$1" "$2"); shift 2 ;;
    *) break ;;
  esac
done

if (($# == 0)); then
  usage >&2
  exit 2
fi

# --- the job -------------------------------------------------------------------------------------
job=$1
shift
if [[ $job == */* || $job == *.py ]]; then
  [[ -f $job ]] || die 2 "no job file '$job'; available jobs: $(available_jobs)"
  job_file=$(cd "$(dirname "$job")" && pwd)/$(basename "$job")
  job_name=$(basename "$job" .py)
else
  job_file=$root/jobs/$job.py
  [[ $job != _* && -f $job_file ]] || die 2 "unknown job '$job'; available jobs: $(available_jobs)"
  job_name=$job
fi

# --- Python for the driver and the executors -----------------------------------------------------
default_py=$root/.venv/bin/python
[[ -x $default_py ]] || default_py=$(command -v python3 || true)
export PYSPARK_PYTHON=${PYSPARK_PYTHON:-$default_py}
export PYSPARK_DRIVER_PYTHON=${PYSPARK_DRIVER_PYTHON:-$default_py}
py=$PYSPARK_DRIVER_PYTHON
[[ -n $py ]] || die 1 "no Python found: create .venv (see README) or set PYSPARK_DRIVER_PYTHON"

pyspark_dir=$("$py" -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))') ||
  die 1 "$py cannot import pyspark; install feast-spark's requirements into it"
export SPARK_HOME=$pyspark_dir

conf_file=${FEAST_SPARK_CONF_DIR:-$root/conf}/spark-defaults.conf
[[ -f $conf_file ]] || die 1 "no $conf_file (FEAST_SPARK_CONF_DIR=${FEAST_SPARK_CONF_DIR:-unset})"

# --- jars: the choice of feast_spark.spark_conf.jars_conf (one copy of the logic) ---------------
# The Delta jars (resolved into the jar cache first when needed, once per machine, locked) and
# feast-spark's own jar.
jar_choice=$(
  PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}" "$py" -c '
import sys
from feast_spark.errors import ConfigError, FeastSparkError
from feast_spark.spark_conf import jars_conf
try:
    chosen = jars_conf()
except FeastSparkError as error:
    print(f"spark-submit.sh: {error}", file=sys.stderr)
    sys.exit(2 if isinstance(error, ConfigError) else 1)
for key, value in chosen.items():
    print(key, value)
'
) || exit $?
jar_args=()
while read -r jar_key jar_value; do
  case $jar_key in
    spark.jars) user_jars=$(join_csv "$jar_value" "$user_jars") ;;
    spark.jars.packages) user_packages=$(join_csv "$jar_value" "$user_packages") ;;
    *) die 1 "unexpected jar setting '$jar_key $jar_value'" ;;
  esac
done <<<"$jar_choice"
[[ -z $user_jars ]] || jar_args+=(--jars "$user_jars")
[[ -z $user_packages ]] || jar_args+=(--packages "$user_packages")

# --- feast_spark as a zip for --py-files: feast_spark.launcher.environment.package_zip (one copy) ---
zip=$(
  PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}" "$py" -c '
import sys
from pathlib import Path
from feast_spark.launcher.environment import package_zip
print(package_zip(Path(sys.argv[1])))
' "$root/build/spark-submit"
) || die 1 "could not build the feast_spark zip under $root/build/spark-submit"
py_files=$(join_csv "$zip" "$user_py_files")

# ${a[@]+"${a[@]}"}: an empty array under `set -u` in bash < 4.4 (macOS) too.
exec "$pyspark_dir/bin/spark-submit" \
  --properties-file "$conf_file" \
  --name "feast-spark-$job_name" \
  ${jar_args[@]+"${jar_args[@]}"} \
  --py-files "$py_files" \
  ${spark_opts[@]+"${spark_opts[@]}"} \
  "$job_file" "$@"
