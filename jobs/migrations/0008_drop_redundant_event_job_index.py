"""Drops job_events' single-column job_id index: job_events_job_idx (job_id, id) answers every
lookup by job, and each event row written on the hot path (created, claimed, succeeded, ...)
paid for both. Dropped CONCURRENTLY so writers are not stopped while it goes.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("jobs", "0007_lease_index_by_expiry"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="jobevent",
                    name="job",
                    field=models.ForeignKey(
                        db_constraint=False,
                        db_index=False,
                        on_delete=models.deletion.CASCADE,
                        related_name="events",
                        to="jobs.job",
                    ),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    "DROP INDEX CONCURRENTLY IF EXISTS job_events_job_id_e9646c53",
                    reverse_sql="CREATE INDEX CONCURRENTLY IF NOT EXISTS job_events_job_id_e9646c53"
                    " ON job_events (job_id)",
                ),
            ],
        ),
    ]
