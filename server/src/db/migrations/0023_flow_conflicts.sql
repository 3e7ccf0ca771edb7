-- Conflict detection at submit (issue 18, item 5): the live flows that can message the same people on the
-- same channel close in time, found when the working copy was submitted (server/src/pipeline/automate/
-- conflicts.ts): { checkedAt, windowHours, flows: [{ flowId, name, version, priority, reasons, measured,
-- slot }] }. Kept with the submission so the reviewer reads what the submitter saw; replaced at the next
-- submit, and read only while the working copy is in review or approved (an edit makes it a draft).
ALTER TABLE flows ADD COLUMN review_conflicts jsonb;
