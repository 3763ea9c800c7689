"""The columns the offline rows have beside the entities and features: one definition for all.

Pure Python: the Spark jobs, the online stores and the definitions' name checks all use these.
"""

from __future__ import annotations

EVENT_TIMESTAMP = "event_timestamp"
"""When the feature values were true (an instant, microsecond precision)."""

CREATED_TIMESTAMP = "created_timestamp"
"""When the row was written at its source; breaks ties between rows of one event time."""

EVENT_DATE = "event_date"
"""The partition column of the retired, day-partitioned layout: ingest refuses such a table.

Still reserved, so that no feature of an old table can take its name.
"""

INGESTION_JOB_ID = "ingestion_job_id"
"""The id of the ingest job that wrote the row."""

RESERVED = (EVENT_TIMESTAMP, CREATED_TIMESTAMP, EVENT_DATE, INGESTION_JOB_ID)
"""Names an entity or a feature cannot have: the stores add these columns."""
