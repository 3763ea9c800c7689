"""The exact spark-submit commands (and REST request) of every target, and secret masking."""

from __future__ import annotations

import pytest

from feast_spark.launcher.kubernetes import (
    client_secrets,
    kubernetes_kill_command,
    kubernetes_status_command,
    submission_id,
)
from feast_spark.launcher.submit import (
    MASK,
    JobLaunch,
    SparkSettings,
    SparkTarget,
    build_rest_submission,
    build_spark_submit_command,
    kubernetes_pod_name,
    mask_command,
    mask_properties,
    mask_text,
    properties_text,
    secret_conf,
    secret_values,
)
from feast_spark.launcher.yarn import yarn_kill_command, yarn_logs_command, yarn_status_command

SUBMIT = "/spark/bin/spark-submit"
PY = "/venv/bin/python"
ZIP = "/cache/feast_spark-0123.zip"
JOB = "/repo/jobs/materialize.py"
SPEC = "s3://bucket/jobs/materialize-t-1/spec.json"

SETTINGS = SparkSettings(
    defaults={"spark.sql.session.timeZone": "UTC", "spark.jars.excludes": "a:b"},
    jars={"spark.jars": "/jars/delta-spark.jar,/jars/delta-storage.jar"},
    conf={"spark.executor.memory": "2g", "spark.sql.session.timeZone": "Etc/UTC"},
    py_files=(ZIP,),
    python=PY,
)
LAUNCH = JobLaunch("materialize-t-1", JOB, ("--spec", SPEC))

COMMON_CONF = [
    "--conf", "spark.executor.memory=2g",
    "--conf", "spark.jars.excludes=a:b",
    "--conf", f"spark.pyspark.driver.python={PY}",
    "--conf", f"spark.pyspark.python={PY}",
    "--conf", "spark.sql.session.timeZone=Etc/UTC",
]  # fmt: skip
HEAD_ARGS = [
    "--name", "feast-spark-materialize-t-1",
    "--jars", "/jars/delta-spark.jar,/jars/delta-storage.jar",
    "--py-files", ZIP,
]  # fmt: skip


def test_local_command_is_exact() -> None:
    # given a local target with one extra spark-submit argument
    target = SparkTarget("local", "local[2]", "client", SUBMIT, ("--driver-memory", "1g"))

    # when the command is built
    argv = build_spark_submit_command(target, LAUNCH, SETTINGS)

    # then defaults are below the config's conf, jars and zip have their options, extras come last
    assert argv == [
        SUBMIT, "--master", "local[2]", "--deploy-mode", "client",
        *HEAD_ARGS,
        *COMMON_CONF,
        "--driver-memory", "1g",
        JOB, "--spec", SPEC,
    ]  # fmt: skip


def test_standalone_client_command_is_exact() -> None:
    target = SparkTarget("standalone", "spark://m:7077", "client", SUBMIT)
    assert build_spark_submit_command(target, LAUNCH, SETTINGS) == [
        SUBMIT, "--master", "spark://m:7077", "--deploy-mode", "client",
        *HEAD_ARGS,
        *COMMON_CONF,
        JOB, "--spec", SPEC,
    ]  # fmt: skip


def test_standalone_cluster_is_a_rest_request_not_a_command() -> None:
    # given standalone cluster mode, which spark-submit refuses for Python
    target = SparkTarget("standalone", "spark://m:7077", "cluster", SUBMIT)
    with pytest.raises(ValueError, match="REST"):
        build_spark_submit_command(target, LAUNCH, SETTINGS)

    # when the REST request is built
    request = build_rest_submission(target, LAUNCH, SETTINGS, "4.2.0")

    # then PythonRunner gets [job file, py-files, *args] and every setting is a spark property
    assert request == {
        "action": "CreateSubmissionRequest",
        "appResource": f"file:{JOB}",
        "mainClass": "org.apache.spark.deploy.PythonRunner",
        "appArgs": [JOB, ZIP, "--spec", SPEC],
        "clientSparkVersion": "4.2.0",
        "environmentVariables": {},
        "sparkProperties": {
            "spark.app.name": "feast-spark-materialize-t-1",
            "spark.driver.supervise": "false",
            "spark.executor.memory": "2g",
            "spark.jars": "/jars/delta-spark.jar,/jars/delta-storage.jar",
            "spark.jars.excludes": "a:b",
            "spark.master": "spark://m:7077",
            "spark.pyspark.driver.python": PY,
            "spark.pyspark.python": PY,
            "spark.sql.session.timeZone": "Etc/UTC",
            "spark.submit.deployMode": "cluster",
            "spark.submit.pyFiles": ZIP,
        },
    }


def test_yarn_cluster_command_returns_after_acceptance_and_tags_the_job() -> None:
    target = SparkTarget("yarn", "yarn", "cluster", SUBMIT)
    assert build_spark_submit_command(target, LAUNCH, SETTINGS) == [
        SUBMIT, "--master", "yarn", "--deploy-mode", "cluster",
        *HEAD_ARGS,
        *COMMON_CONF,
        "--conf", "spark.yarn.submit.waitAppCompletion=false",
        "--conf", "spark.yarn.tags=feast-spark,materialize-t-1",
        JOB, "--spec", SPEC,
    ]  # fmt: skip


def test_yarn_client_command_has_no_tracking_settings() -> None:
    target = SparkTarget("yarn", "yarn", "client", SUBMIT)
    assert build_spark_submit_command(target, LAUNCH, SETTINGS) == [
        SUBMIT, "--master", "yarn", "--deploy-mode", "client",
        *HEAD_ARGS,
        *COMMON_CONF,
        JOB, "--spec", SPEC,
    ]  # fmt: skip


def test_kubernetes_cluster_command_names_the_driver_pod() -> None:
    target = SparkTarget("kubernetes", "k8s://https://k:443", "cluster", SUBMIT)
    assert build_spark_submit_command(target, LAUNCH, SETTINGS) == [
        SUBMIT, "--master", "k8s://https://k:443", "--deploy-mode", "cluster",
        *HEAD_ARGS,
        *COMMON_CONF[:4],
        "--conf", "spark.kubernetes.driver.pod.name=materialize-t-1-driver",
        "--conf", "spark.kubernetes.submission.waitAppCompletion=false",
        *COMMON_CONF[4:],
        JOB, "--spec", SPEC,
    ]  # fmt: skip


def test_tracking_settings_win_over_the_users() -> None:
    # given a config that would make spark-submit wait for the whole YARN application
    settings = SparkSettings(conf={"spark.yarn.submit.waitAppCompletion": "true"}, python=PY)
    target = SparkTarget("yarn", "yarn", "cluster", SUBMIT)

    argv = build_spark_submit_command(target, JobLaunch("j", JOB), settings)

    assert "spark.yarn.submit.waitAppCompletion=false" in argv
    assert "spark.yarn.submit.waitAppCompletion=true" not in argv


def test_sized_settings_are_below_the_users_and_above_the_defaults() -> None:
    # given defaults, a config that sets the driver's JVM options, and settings sized to the job
    settings = SparkSettings(
        defaults={"spark.databricks.delta.snapshotPartitions": "50"},
        conf={"spark.driver.extraJavaOptions": "-Xss4m"},
        python=PY,
    )
    launch = JobLaunch(
        "j",
        JOB,
        sized={
            "spark.databricks.delta.snapshotPartitions": "3",
            "spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1",
        },
    )

    # when the command is built
    argv = build_spark_submit_command(
        SparkTarget("local", "local[2]", "client", SUBMIT), launch, settings
    )

    # then the sized partitions replace the default, and the user's JVM options stay
    assert argv == [
        SUBMIT, "--master", "local[2]", "--deploy-mode", "client", "--name", "feast-spark-j",
        "--conf", "spark.databricks.delta.snapshotPartitions=3",
        "--conf", "spark.driver.extraJavaOptions=-Xss4m",
        "--conf", f"spark.pyspark.driver.python={PY}",
        "--conf", f"spark.pyspark.python={PY}",
        JOB,
    ]  # fmt: skip


def test_packages_and_user_jars_are_joined() -> None:
    settings = SparkSettings(
        jars={"spark.jars.packages": "io.delta:delta-spark_2.13:4.4.0"},
        conf={"spark.jars.packages": "org.x:y:1", "spark.jars": "/extra.jar"},
        python=PY,
    )
    argv = build_spark_submit_command(
        SparkTarget("local", "local[*]", "client", SUBMIT), JobLaunch("j", JOB), settings
    )
    assert argv == [
        SUBMIT, "--master", "local[*]", "--deploy-mode", "client", "--name", "feast-spark-j",
        "--jars", "/extra.jar",
        "--packages", "io.delta:delta-spark_2.13:4.4.0,org.x:y:1",
        "--conf", f"spark.pyspark.driver.python={PY}",
        "--conf", f"spark.pyspark.python={PY}",
        JOB,
    ]  # fmt: skip


def test_a_local_master_in_cluster_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="client"):
        SparkTarget("local", "local[*]", "cluster", SUBMIT)


@pytest.mark.parametrize(
    ("job_id", "pod"),
    [
        ("materialize-driver_stats-20240101T000000-abc123", "materialize-driver-stats-20240101t000000-abc123-driver"),
        ("X" * 80, "x" * 56 + "-driver"),
        ("__", "job-driver"),
    ],
)  # fmt: skip
def test_pod_names_are_valid_kubernetes_names(job_id: str, pod: str) -> None:
    assert kubernetes_pod_name(job_id) == pod
    assert len(pod) <= 63


# --- status and kill commands --------------------------------------------------------------------


def test_yarn_status_kill_and_logs_commands() -> None:
    assert yarn_status_command("application_1_0002") == [
        "yarn", "application", "-status", "application_1_0002",
    ]  # fmt: skip
    assert yarn_kill_command("application_1_0002", "/opt/hadoop/bin/yarn") == [
        "/opt/hadoop/bin/yarn", "application", "-kill", "application_1_0002",
    ]  # fmt: skip
    assert yarn_logs_command("application_1_0002") == [
        "yarn", "logs", "-applicationId", "application_1_0002",
    ]  # fmt: skip


def test_kubernetes_status_and_kill_commands_carry_the_client_settings() -> None:
    conf = {
        "spark.kubernetes.namespace": "features",
        "spark.kubernetes.authenticate.submission.oauthToken": "tok-123",
        "spark.kubernetes.context": "prod",
        "spark.executor.memory": "2g",
    }
    handle = submission_id("materialize-t-1", conf)
    assert handle == "features:materialize-t-1-driver"

    status = kubernetes_status_command(
        SUBMIT, "k8s://https://k:443", handle, conf, "/p/c.properties"
    )
    kill = kubernetes_kill_command(SUBMIT, "k8s://https://k:443", handle, conf, "/p/c.properties")

    # the OAuth token goes through the private properties file, never the command line
    client = [
        "--properties-file", "/p/c.properties", "--load-spark-defaults",
        "--conf", "spark.kubernetes.context=prod",
    ]  # fmt: skip
    assert status == [SUBMIT, "--master", "k8s://https://k:443", "--status", handle, *client]
    assert kill == [SUBMIT, "--master", "k8s://https://k:443", "--kill", handle, *client]
    assert client_secrets(conf) == {
        "spark.kubernetes.authenticate.submission.oauthToken": "tok-123"
    }
    with pytest.raises(ValueError, match="oauthToken"):
        kubernetes_kill_command(SUBMIT, "k8s://https://k:443", handle, conf)


# --- masking -------------------------------------------------------------------------------------


def test_secret_settings_and_url_passwords_are_masked() -> None:
    # given a command with secrets in several forms
    argv = [
        SUBMIT,
        "--conf", "spark.hadoop.fs.s3a.secret.key=SECRETKEY",
        "--conf", "spark.hadoop.fs.s3a.access.key=AKIAXXXX",
        "--conf=spark.cassandra.auth.password=hunter22",
        "--conf", "spark.executor.memory=2g",
        "--conf", "spark.jars.excludes=org.slf4j:slf4j-api",
        "--conf", "spark.hadoop.fs.azure.sas.container.account=sv=2020&sig=abcd",
        "--token", "bearer-xyz",
        JOB, "--spec", "https://user:pa55word@host/spec.json",
    ]  # fmt: skip

    # when it is masked
    masked = mask_command(argv)

    # then only the secret values are replaced
    assert masked == [
        SUBMIT,
        "--conf", f"spark.hadoop.fs.s3a.secret.key={MASK}",
        "--conf", f"spark.hadoop.fs.s3a.access.key={MASK}",
        f"--conf=spark.cassandra.auth.password={MASK}",
        "--conf", "spark.executor.memory=2g",
        "--conf", "spark.jars.excludes=org.slf4j:slf4j-api",
        "--conf", f"spark.hadoop.fs.azure.sas.container.account={MASK}",
        "--token", MASK,
        JOB, "--spec", f"https://user:{MASK}@host/spec.json",
    ]  # fmt: skip
    # and the values found can be scrubbed from output too
    secrets = secret_values(argv)
    assert set(secrets) == {
        "SECRETKEY", "AKIAXXXX", "hunter22", "sv=2020&sig=abcd", "bearer-xyz", "pa55word",
    }  # fmt: skip
    output = "Exception: bad credentials AKIAXXXX for s3a; retry with hunter22"
    assert (
        mask_text(output, secrets)
        == f"Exception: bad credentials {MASK} for s3a; retry with {MASK}"
    )


def test_masking_leaves_a_command_without_secrets_unchanged() -> None:
    argv = build_spark_submit_command(
        SparkTarget("local", "local[2]", "client", SUBMIT), LAUNCH, SETTINGS
    )
    assert mask_command(argv) == argv
    assert secret_values(argv) == []


def test_rest_properties_are_masked() -> None:
    assert mask_properties(
        {
            "spark.hadoop.fs.s3a.secret.key": "s3cr3t!",
            "spark.app.name": "x",
            "spark.authenticate": "",
        }
    ) == {"spark.hadoop.fs.s3a.secret.key": MASK, "spark.app.name": "x", "spark.authenticate": ""}


# --- secrets never on a command line (issue 18, defect 8) ----------------------------------------


SECRETS = {
    "spark.hadoop.fs.s3a.secret.key": "S3CR3T/k3y+",
    "spark.cassandra.auth.password": "hunter22",
    "spark.hadoop.javax.jdo.option.ConnectionURL": "jdbc:mysql://app:pw0rd@db:3306/meta",
}


def test_secret_settings_go_to_a_properties_file_not_the_command() -> None:
    # given settings with secrets among ordinary ones
    settings = SparkSettings(
        defaults=SETTINGS.defaults, jars=SETTINGS.jars, conf={**SETTINGS.conf, **SECRETS},
        py_files=(ZIP,), python=PY,
    )  # fmt: skip
    target = SparkTarget("local", "local[2]", "client", SUBMIT)

    # when the command is built with a secrets file
    argv = build_spark_submit_command(
        target, LAUNCH, settings, secrets_file="/private/j.properties"
    )

    # then the command names the file (and keeps the cluster's spark-defaults.conf beneath it),
    # carries every other setting, and no secret; the secrets are what goes into the file
    assert argv == [
        SUBMIT, "--master", "local[2]", "--deploy-mode", "client", *HEAD_ARGS,
        "--properties-file", "/private/j.properties", "--load-spark-defaults",
        *COMMON_CONF, JOB, "--spec", SPEC,
    ]  # fmt: skip
    assert secret_conf(target, LAUNCH, settings) == SECRETS
    assert secret_values(argv) == []
    # and without a file to put them in, the command is refused rather than leaking them
    with pytest.raises(ValueError, match="secrets_file"):
        build_spark_submit_command(target, LAUNCH, settings)


def test_properties_text_escapes_what_java_properties_would_misread() -> None:
    text = properties_text({"spark.b": "x\\y=z\nw", "spark.a": "p:q #r!"})
    assert text.splitlines()[1:] == ["spark.a=p:q #r!", "spark.b=x\\\\y=z\\nw"]
