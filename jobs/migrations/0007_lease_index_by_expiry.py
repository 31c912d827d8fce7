"""The lease index keys on the lease itself, so statements that check `state = 'RUNNING'` for a
batch of ids look them up by primary key instead of reading every running job (see Job.Meta).

Built and dropped CONCURRENTLY (outside a transaction): a plain DROP INDEX would hold an
exclusive lock on jobs for the whole build of the new index, stopping every worker.
"""

from django.contrib.postgres.operations import AddIndexConcurrently, RemoveIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("jobs", "0006_audit_entries"),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="job",
            index=models.Index(
                condition=models.Q(("lease_expires_at__isnull", False)),
                fields=["lease_expires_at"],
                name="jobs_lease_expiry_idx",
            ),
        ),
        RemoveIndexConcurrently(model_name="job", name="jobs_lease_idx"),
    ]
