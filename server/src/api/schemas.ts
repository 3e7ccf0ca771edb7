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
