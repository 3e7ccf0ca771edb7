import { z } from '@hono/zod-openapi';

// zod's `.partial()` keeps every `.default()`: a PATCH parsed with `Create.partial()` fills the fields
// it was not given with their defaults, and the update then resets them. That turned a rename of a
// marketing destination into one without `purposes` — a consent bypass. Every PATCH body is built here
// from the resource's create schema instead, and api/patch.test.ts walks every PATCH route of the app
// to check that an empty body parses to an empty object.

type WithoutDefault<S> = S extends z.ZodDefault<infer Inner> ? Inner : S;
type PatchShape<T extends z.ZodRawShape> = { [K in keyof T]: z.ZodOptional<WithoutDefault<T[K]>> };

/**
 * The body schema of a partial update, from a create schema: every field optional, no field with a
 * default (a field the client leaves out stays out of the parsed patch), unknown fields refused
 * (a typo is a 400, not a silent no-op).
 *
 * @example
 * const Patch = patchOf(CreateDestination.omit({ plugin: true }));
 * Patch.parse({ name: 'renamed' }); // { name: 'renamed' }, and nothing else
 */
export function patchOf<T extends z.ZodRawShape>(schema: z.ZodObject<T>): z.ZodObject<PatchShape<T>> {
  const shape: Record<string, z.ZodType> = {};
  for (const [key, field] of Object.entries(schema.shape)) shape[key] = withoutDefault(field as z.ZodType).optional();
  return z.strictObject(shape) as unknown as z.ZodObject<PatchShape<T>>;
}

function withoutDefault(field: z.ZodType): z.ZodType {
  // `.default(x).openapi({...})` and `.default(x).describe(...)` are still a ZodDefault (metadata only);
  // the description goes with the unwrapped field so the reference keeps it.
  if (field instanceof z.ZodDefault || field instanceof z.ZodPrefault) {
    const inner = field.unwrap() as z.ZodType;
    const description = field.description;
    return description ? inner.describe(description) : inner;
  }
  return field;
}

/**
 * The record after a patch: the fields the patch names replace the current ones, and only those
 * (`null` is a value; a field left out is not). Use with a body parsed by a `patchOf` schema.
 *
 * @example
 * applyPatch({ name: 'a', topic: 'news' }, { name: 'b' }); // { name: 'b', topic: 'news' }
 */
export function applyPatch<T extends object>(current: T, patch: Partial<T>): T {
  const next = { ...current };
  for (const [key, value] of Object.entries(patch)) {
    if (value !== undefined) (next as Record<string, unknown>)[key] = value;
  }
  return next;
}
