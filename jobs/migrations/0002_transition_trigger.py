"""Mirrors jobs/states.py TRANSITIONS in the database, so no write can make an illegal move.

tests/integration/test_transitions_db.py walks every pair of states against this trigger; a
change to TRANSITIONS needs a new migration like this one.
"""

from django.db import migrations

TRIGGER = """
CREATE OR REPLACE FUNCTION taskforge_check_transition() RETURNS trigger AS $$
BEGIN
  IF NOT (CASE OLD.state
    WHEN 'PENDING' THEN NEW.state IN ('CANCELED', 'DLQ', 'QUEUED')
    WHEN 'QUEUED' THEN NEW.state IN ('CANCELED', 'DLQ', 'PENDING', 'RUNNING')
    WHEN 'RUNNING' THEN NEW.state IN ('CANCELED', 'DLQ', 'QUEUED', 'RETRYING', 'SUCCEEDED')
    WHEN 'RETRYING' THEN NEW.state IN ('CANCELED', 'DLQ', 'QUEUED')
    WHEN 'SUCCEEDED' THEN false
    WHEN 'DLQ' THEN NEW.state IN ('QUEUED')
    WHEN 'CANCELED' THEN NEW.state IN ('QUEUED')
    ELSE false END) THEN
    RAISE EXCEPTION 'invalid job state transition from % to %', OLD.state, NEW.state
      USING ERRCODE = 'check_violation';
  END IF;
  RETURN NEW;
END $$ LANGUAGE plpgsql;
DROP TRIGGER IF EXISTS jobs_check_transition ON jobs;
CREATE TRIGGER jobs_check_transition BEFORE UPDATE OF state ON jobs
  FOR EACH ROW WHEN (OLD.state IS DISTINCT FROM NEW.state)
  EXECUTE FUNCTION taskforge_check_transition();
"""

REVERSE = """
DROP TRIGGER IF EXISTS jobs_check_transition ON jobs;
DROP FUNCTION IF EXISTS taskforge_check_transition();
"""


class Migration(migrations.Migration):
    dependencies = [("jobs", "0001_initial")]

    operations = [
        migrations.RunSQL(TRIGGER, REVERSE),
        # Room on each page for HOT updates: jobs are updated a few times each, then pruned.
        migrations.RunSQL("ALTER TABLE jobs SET (fillfactor = 80)", "ALTER TABLE jobs RESET (fillfactor)"),
    ]
