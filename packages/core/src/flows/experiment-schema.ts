/**
 * The zod schema of the `experiment` node (kept apart from schema.ts, which lists it among the
 * node schemas): structure only; `experimentIssues` (experiment.ts) checks the shares and indexes.
 */
import { z } from 'zod';
import { eventFilterSchema } from '../rules/event-filter.ts';
import { pathSchema } from '../rules/schema.ts';

/** At most this many variants in one experiment (Iterable allows 10 paths, Braze 4 + control). */
export const MAX_VARIANTS = 10;
/** The longest test (a year). */
export const MAX_DEADLINE_DAYS = 365;

const percent = z.number().min(0).max(100);

/**
 * The node's fields besides `id`, `name` and `type`.
 *
 * @example
 * z.strictObject({ ...base, type: z.literal('experiment'), ...experimentFields });
 */
export const experimentFields = {
  variants: z
    .array(z.strictObject({ name: z.string().min(1).max(200), percent }))
    .min(1)
    .max(MAX_VARIANTS)
    .describe('the message variants, each a share of the sample (with control, the shares add up to 100)'),
  control: z.strictObject({ percent }).optional().describe('a holdout share of the sample that gets no message'),
  sample: z
    .number()
    .gt(0)
    .max(100)
    .describe('the percentage of entrants tested while undecided; the rest wait at the node for the winner'),
  goal: z.strictObject({
    event: eventFilterSchema,
    withinSeconds: z
      .number()
      .int()
      .min(1)
      .max(MAX_DEADLINE_DAYS * 86_400),
    value: pathSchema
      .optional()
      .describe(
        'a numeric event property (dot path, e.g. properties.revenue) summed per person: the metric is revenue per person',
      ),
  }),
  decide: z.strictObject({
    alpha: z.number().min(0.0001).max(0.2).optional().describe('the error rate under any number of looks (0.05)'),
    deadlineDays: z.number().gt(0).max(MAX_DEADLINE_DAYS),
    default: z.number().int().min(0).optional().describe('the variant index used when undecided at the deadline (0)'),
    minPerArm: z.number().int().min(1).max(1_000_000).optional().describe('people per arm before any decision (100)'),
    tuning: z
      .number()
      .int()
      .min(100)
      .max(100_000_000)
      .optional()
      .describe('people per arm at which the sequential test is most sensitive (5,000)'),
  }),
};
