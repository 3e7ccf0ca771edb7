import { ruleJsonSchema } from '@cairn/core';
import { z } from '@hono/zod-openapi';

/** The error body every failing route returns. */
export const ErrorSchema = z
  .object({
    error: z.object({
      code: z.string().openapi({ example: 'invalid_request' }),
      message: z.string(),
      details: z.unknown().optional(),
    }),
  })
  .openapi('Error');

/** Responses every authenticated route can give. */
export const AUTH_ERRORS = {
  401: { description: 'Missing or unknown API key', content: { 'application/json': { schema: ErrorSchema } } },
  403: { description: 'The key lacks the permission', content: { 'application/json': { schema: ErrorSchema } } },
} as const;

/** A JSON response entry for createRoute. */
export function json<T extends z.ZodType>(schema: T, description: string) {
  return { description, content: { 'application/json': { schema } } };
}

/**
 * A rule of the audience and tag language (`packages/core/src/rules/README.md`). Parsed as any JSON
 * here: `checkRule` validates it with messages that name the field at fault. The description shows
 * the language's real JSON Schema (recursive), generated from the zod schema that validates rules.
 *
 * @example
 * const body = z.object({ name: z.string(), rule: RuleSchema });
 */
export const RuleSchema = z.unknown().openapi('Rule', {
  ...ruleJsonSchema({ ref: '#/components/schemas/Rule' }),
  description: 'A rule tree: `and`/`or`/`not` over leaves that each read one fact about a profile',
  example: {
    op: 'and',
    rules: [
      { op: 'trait', trait: 'plan', cmp: '=', value: 'pro' },
      { op: 'performed', event: 'Order Completed', min: 2, within: { last: 90, unit: 'days' } },
    ],
  },
});
