-- Replaying a refused event (POST /api/failed-events/:id/replay) records when, and under which messageId.
ALTER TABLE failed_events
  ADD COLUMN replayed_at timestamptz,
  ADD COLUMN replayed_message_id text;
