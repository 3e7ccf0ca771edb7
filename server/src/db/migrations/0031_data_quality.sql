-- Data quality (issue 21): rules per trait, applied where traits are folded (stage 2 and bulk import,
-- packages/core/src/quality). A rule normalises values ({"normalize": [{"op": "date"}, ...]}) and/or
-- fills a missing value ({"fill": {"default": ...}} or {"fill": {"template": "{{ traits.a }} ..."}}),
-- written with source 'derived' in profile_traits. The quality report (GET /api/data-quality/traits)
-- reads profile_traits as it is: no extra index on that hot table.
CREATE TABLE trait_rules (
  key text PRIMARY KEY,
  rule jsonb NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  updated_by text
);
