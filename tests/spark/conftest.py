"""Spark fixtures: one local Spark session (one JVM) for every test in ``tests/spark``.

The tests here need the ``spark`` extra and Java 17; where either is missing they are skipped
with the reason, so the default suite is unaffected::

    pip install -e '.[dev,spark]'
    SPARK_LOCAL_IP=127.0.0.1 python -m pytest tests/spark -m spark -q
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
from pathlib import Path

import pytest

os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")

HERE = Path(__file__).resolve().parent


def _spark_unavailable() -> str | None:
    for module in ("pyspark", "ibis.backends.pyspark"):
        if importlib.util.find_spec(module) is None:
            return f"engine='spark' needs the spark extra ({module} is missing)"
    java = shutil.which("java")
    try:
        ok = java is not None and subprocess.run(
            [java, "-version"], capture_output=True, timeout=60
        ).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        ok = False
    return None if ok else "engine='spark' needs Java (17) on PATH"


def pytest_collection_modifyitems(config, items):
    here = [item for item in items if HERE in Path(str(item.fspath)).resolve().parents]
    reason = _spark_unavailable() if here else None
    for item in here if reason else ():
        item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def spark():
    """One local Spark session; ``load_dataset(engine="spark")`` reuses it
    (``SparkSession.builder.getOrCreate()`` returns the active session)."""
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master("local[2]")
        .appName("promo-analysis-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.default.parallelism", "2")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.driver.memory", "1g")
        .config("spark.sql.ansi.enabled", "false")
        .getOrCreate()
    )
    yield session
    session.stop()
