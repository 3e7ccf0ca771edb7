import { z } from '@hono/zod-openapi';

// OpenAPI shapes of /api/data-quality. The rule body is parsed as any JSON and validated by
// TraitQualityRuleSchema (packages/core/src/quality/rules.ts), whose messages name the field at fault;
// the description below is the same rule language written out.

const step = (op: string, properties: Record<string, unknown> = {}, description = '') => ({
  type: 'object',
  required: ['op'],
  additionalProperties: false,
  properties: { op: { type: 'string', enum: [op] }, ...properties },
  ...(description ? { description } : {}),
});

/** A trait's rule, as PUT takes it. */
// (A hand-written JSON Schema: its nested `type` strings are wider than the metadata's literal types.)
export const RuleBodySchema = z.unknown().openapi('TraitQualityRule', {
  type: 'object',
  additionalProperties: false,
  description:
    'Normalisation steps applied in order to each value set (a value a step fails on is kept as received), ' +
    'and/or a fill for a missing value (stored with source `derived`, recomputed when its inputs change). ' +
    'At least one of the two.',
  properties: {
    normalize: {
      type: 'array',
      maxItems: 10,
      items: {
        oneOf: [
          step('trim'),
          step('lower'),
          step('upper'),
          step(
            'date',
            {
              dayFirst: { type: 'boolean', description: 'Read 01/02/2020 as 1 February (default true)' },
              formats: { type: 'array', items: { type: 'string' }, maxItems: 10, description: 'Extra luxon layouts' },
            },
            'To YYYY-MM-DD, or a UTC ISO-8601 timestamp when the value has a time',
          ),
          step(
            'country',
            { languages: { type: 'array', items: { type: 'string' }, description: 'ISO 639-1 (default ["en"])' } },
            'Country names or ISO codes to ISO 3166-1 alpha-2 (i18n-iso-countries)',
          ),
          step(
            'phone',
            { defaultCallingCode: { type: 'string', example: '44' } },
            'To E.164 (numbers without + need a calling code: the rule’s or the server’s)',
          ),
        ],
      },
    },
    fill: {
      oneOf: [
        { type: 'null' },
        {
          type: 'object',
          required: ['default'],
          additionalProperties: false,
          properties: { default: { description: 'Any JSON value but null' } },
        },
        {
          type: 'object',
          required: ['template'],
          additionalProperties: false,
          properties: {
            template: {
              type: 'string',
              maxLength: 500,
              example: '{{ traits.first_name }} {{ traits.last_name }}',
              description: 'Reads other traits only ({{ traits.<key> }}, optional | default: "text")',
            },
          },
        },
      ],
    },
  },
  example: { normalize: [{ op: 'trim' }, { op: 'country', languages: ['en', 'de'] }] },
} as never);

/** A stored rule. */
export const StoredRuleSchema = z
  .object({
    key: z.string(),
    rule: RuleBodySchema,
    createdAt: z.string(),
    updatedAt: z.string(),
    updatedBy: z.string().nullable(),
  })
  .openapi('StoredTraitQualityRule');

const TraitQualitySchema = z
  .object({
    key: z.string(),
    filled: z.number().int().openapi({ description: 'Profiles with a value (derived ones included)' }),
    fillRate: z.number().openapi({ description: 'filled / live profiles, 0..1' }),
    derived: z.number().int().openapi({ description: 'Values filled by a fill rule (source derived)' }),
    types: z.record(z.string(), z.number().int()).openapi({
      description: 'Values by JSON type (string, number, boolean, object, array); `sealed` = encrypted, not opened',
    }),
    stale: z.number().int().openapi({ description: 'Values last updated more than staleDays ago' }),
    oldestUpdate: z.string().nullable(),
    newestUpdate: z.string().nullable(),
    rule: RuleBodySchema.nullable(),
    failed: z
      .object({
        count: z.number().int(),
        examples: z.array(
          z.object({
            profileId: z.string(),
            value: z.unknown().openapi({ description: 'Masked without pii:read when the trait is sensitive' }),
            reason: z.string(),
          }),
        ),
      })
      .nullable()
      .openapi({ description: 'With normalisation steps: values the rule fails on (kept as received)' }),
    unnormalized: z
      .number()
      .int()
      .nullable()
      .openapi({ description: 'With normalisation steps: values stored before the rule that it would change' }),
  })
  .openapi('TraitQuality');

const ReportFields = {
  profiles: z.number().int().openapi({ description: 'Live profiles (not merged away, not erased)' }),
  staleDays: z.number().int(),
  staleBefore: z.string(),
  exact: z.boolean().openapi({ description: 'false when samplePercent was given: counts are estimates' }),
  samplePercent: z.number().nullable(),
};

/** The report over every trait. */
export const ReportSchema = z
  .object({ ...ReportFields, traits: z.array(TraitQualitySchema) })
  .openapi('DataQualityReport');

/** The report of one trait. */
export const TraitReportSchema = z.object({ ...ReportFields, trait: TraitQualitySchema }).openapi('TraitQualityReport');
