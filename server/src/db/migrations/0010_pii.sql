-- PII at rest (docs/design/pii.md). Sensitive trait values are stored sealed (AES-256-GCM, in the
-- value itself); beside them, the blind index (keyed HMAC) of the normalised value, so SQL can still
-- match them without reading them: a subscription's contact point (`email:<blind>` is the key an email
-- identity and an unsubscribed address have) and equality in rules. Null for traits that are not
-- sensitive, and for values that are not text.
ALTER TABLE profile_traits ADD COLUMN blind text;
CREATE INDEX profile_traits_blind_idx ON profile_traits (key, blind) WHERE blind IS NOT NULL;
