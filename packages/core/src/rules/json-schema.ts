import { z } from 'zod';
import { ruleSchema } from './schema.ts';

/** A JSON Schema document (draft 2020-12), as plain JSON. */
export type JsonSchema = { [key: string]: unknown };

/**
 * The rule language as a JSON Schema (draft 2020-12), generated from the zod schema that validates
 * rules (`ruleSchema`), so the two cannot drift apart: every operator, comparison and limit it
 * accepts, recursive through `and`/`or`/`not`. It checks structure; `validateRule` adds what a schema
 * cannot say (dates that exist, regex subset, bounds in order, `min <= max`).
 *
 * With `ref`, the recursion points there and `$schema` is left out, for embedding the schema under
 * that address (an OpenAPI component); without it, the schema stands alone and recurses to `#`.
 *
 * @example
 * const standalone = ruleJsonSchema(); // { $schema, anyOf: [{ properties: { op: { const: 'and' }, rules: { items: { $ref: '#' } } } }, ...] }
 *
 * @example
 * components.schemas.Rule = ruleJsonSchema({ ref: '#/components/schemas/Rule' });
 */
export function ruleJsonSchema(options: { ref?: string } = {}): JsonSchema {
  // io 'input': the schema describes what a client sends. Anything zod cannot express in JSON
  // Schema throws here (and in the tests) rather than being left out silently.
  const settings = { target: 'draft-2020-12', io: 'input' } as const;
  if (!options.ref) return z.toJSONSchema(ruleSchema, settings) as JsonSchema;
  const registry = z.registry<{ id: string }>();
  registry.add(ruleSchema, { id: 'rule' });
  const { schemas } = z.toJSONSchema(registry, { ...settings, uri: () => options.ref! });
  // zod names the embedded schema by `$id` (a bare fragment, which 2020-12 does not allow in `$id`):
  // its address is where the caller puts it.
  const { $id: _id, $schema: _dialect, ...schema } = schemas.rule as JsonSchema;
  return schema;
}
