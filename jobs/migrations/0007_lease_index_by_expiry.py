"""The lease index keys on the lease itself, so statements that check `state = 'RUNNING'` for a
batch of ids look them up by primary key instead of reading every running job (see Job.Meta)."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('jobs', '0006_audit_entries'),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name='job',
            name='jobs_lease_idx',
        ),
        migrations.AddIndex(
            model_name='job',
            index=models.Index(condition=models.Q(('lease_expires_at__isnull', False)), fields=['lease_expires_at'], name='jobs_lease_expiry_idx'),
        ),
    ]
