import { OpenAPIHono, z } from '@hono/zod-openapi';
import { Validator } from '@seriousme/openapi-schema-validator';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Cairn } from '../server.ts';
import {
  basicAuth,
  createTestDatabase,
  POSTGRES_SKIP_REASON,
  startTestCairn,
  TEST_ADMIN_KEY,
  type TestDatabase,
} from '../testing/index.ts';
import { apiDescription } from './description.ts';

// biome-ignore lint/suspicious/noExplicitAny: the description is checked by the assertions
type Any = any;

// Postgres when there is one (CI), else the embedded database: the description is the same on both.
const mode = POSTGRES_SKIP_REASON ? 'embedded' : 'postgres';

/** Every `$ref` in a document with where it sits. */
function refsOf(node: unknown, at = '#'): { at: string; ref: string }[] {
  if (!node || typeof node !== 'object') return [];
  const own = typeof (node as Any).$ref === 'string' ? [{ at, ref: (node as Any).$ref as string }] : [];
  return [...own, ...Object.entries(node).flatMap(([k, v]) => refsOf(v, `${at}/${k}`))];
}

/** JSON pointers of every `schema` object under a node (parameters, request and response bodies). */
function schemasOf(node: unknown, at: string): string[] {
  if (!node || typeof node !== 'object') return [];
  return Object.entries(node).flatMap(([k, v]) => {
    const here = `${at}/${k.replaceAll('~', '~0').replaceAll('/', '~1')}`;
    return k === 'schema' && v && typeof v === 'object' ? [here] : schemasOf(v, here);
  });
}

/** The value at a local JSON pointer (`#/components/schemas/Rule`), or undefined. */
function pointer(doc: Any, ref: string): unknown {
  if (!ref.startsWith('#/')) return undefined;
  return ref
    .slice(2)
    .split('/')
    .map((p) => p.replaceAll('~1', '/').replaceAll('~0', '~'))
    .reduce((node, key) => (node == null ? undefined : node[key]), doc);
}

describe(`the OpenAPI description (${mode})`, () => {
  let db: TestDatabase;
  let cairn: Cairn;
  let doc: Any;
  /** A path of the description resolved against its first server, as a client would. */
  let resolve: (path: string) => string;

  beforeAll(async () => {
    db = await createTestDatabase(`openapi.test.ts:${mode}`, mode);
    cairn = await startTestCairn(db.env);
    const at = `${cairn.url}/api/openapi.json`;
    doc = await (await fetch(at)).json();
    resolve = (path) => `${new URL(doc.servers[0].url, at).href.replace(/\/+$/, '')}${path}`;
  });
  afterAll(async () => {
    await cairn?.close();
    await db?.drop();
  });

  it('is a valid OpenAPI 3.1 document (checked by @seriousme/openapi-schema-validator)', async () => {
    const validator = new Validator();
    const result = await validator.validate(structuredClone(doc));
    expect(result.errors ?? [], JSON.stringify(result.errors, null, 1)?.slice(0, 3000)).toEqual([]);
    expect(result.valid).toBe(true);
    expect(validator.version).toBe('3.1');
  });

  it('resolves every $ref, and every schema in it compiles as JSON Schema 2020-12', () => {
    const refs = refsOf(doc);
    expect(refs.length).toBeGreaterThan(50);
    expect(refs.filter(({ ref }) => pointer(doc, ref) === undefined)).toEqual([]);
    // strict: false only for OpenAPI's own keywords (example, discriminator...) that are no JSON Schema keywords.
    const ajv = new Ajv2020({ strict: false, validateFormats: false });
    ajv.addSchema({ ...doc, $id: 'https://cairn.invalid/openapi.json' });
    // (The OpenAPI validator checks the document's shape, not the JSON Schemas inside it: ajv does.)
    for (const [name, schema] of Object.entries(doc.components.schemas)) {
      expect(ajv.validateSchema(schema as object), `${name}: ${JSON.stringify(ajv.errors)}`).toBe(true);
      const compiled = ajv.getSchema(`https://cairn.invalid/openapi.json#/components/schemas/${name}`);
      expect(compiled, name).toBeTypeOf('function');
    }
    const inline = schemasOf(doc.paths, '#/paths');
    expect(inline.length).toBeGreaterThan(100);
    for (const at of inline) {
      expect(ajv.validateSchema(pointer(doc, at) as object), `${at}: ${JSON.stringify(ajv.errors)}`).toBe(true);
      expect(ajv.getSchema(`https://cairn.invalid/openapi.json${at}`), at).toBeTypeOf('function');
    }
  });

  it('names every path with its full prefix, resolved against one server', () => {
    expect(doc.servers).toEqual([{ url: '/', description: expect.any(String) }]);
    const paths = Object.keys(doc.paths);
    expect(paths.length).toBeGreaterThan(50);
    expect(paths.filter((p) => !p.startsWith('/api/') && !p.startsWith('/v1/'))).toEqual([]);
    expect(paths).toEqual(expect.arrayContaining(['/api/sources', '/api/profiles/{id}', '/v1/batch', '/v1/track']));
  });

  it('describes rules with the language itself: recursive, with its operators and comparisons', () => {
    const rule = doc.components.schemas.Rule;
    expect(JSON.stringify(rule)).toContain('"items":{"$ref":"#/components/schemas/Rule"}');
    const ops = new Set(JSON.stringify(rule).match(/"op":\{"type":"string","const":"[a-z_]+"/g));
    expect(ops.size).toBe(14);
    const audience = doc.paths['/api/audiences'].post.requestBody.content['application/json'].schema;
    const body = audience.$ref ? pointer(doc, audience.$ref) : audience;
    expect((body as Any).properties.rule).toEqual({ $ref: '#/components/schemas/Rule' });
    // Destination filters are the same language's event filters, in input and output.
    expect(doc.components.schemas.EventFilter).toBeDefined();
    const destination = doc.paths['/api/destinations'].post.requestBody.content['application/json'].schema;
    const input = destination.$ref ? pointer(doc, destination.$ref) : destination;
    expect(JSON.stringify((input as Any).properties.filter)).toContain('#/components/schemas/EventFilter');
    expect(JSON.stringify(doc.components.schemas.Destination)).toContain('#/components/schemas/EventFilter');

    const ajv = new Ajv2020({ strict: false, validateFormats: false });
    ajv.addSchema({ ...doc, $id: 'https://cairn.invalid/openapi.json' });
    const isRule = ajv.getSchema('https://cairn.invalid/openapi.json#/components/schemas/Rule')!;
    const good = {
      op: 'and',
      rules: [
        { op: 'performed', event: 'Order Completed', min: 2, within: { last: 30, unit: 'days' } },
        { op: 'not', rule: { op: 'trait', trait: 'plan', cmp: 'in', value: ['free', 'trial'] } },
      ],
    };
    expect(isRule(good)).toBe(true);
    expect(isRule(rule.example)).toBe(true);
    expect(isRule({ op: 'and', rules: [{ op: 'trait', trait: 'plan', cmp: 'like', value: 'pro' }] })).toBe(false);
    expect(isRule({ op: 'not', rule: { op: 'performed', event: 'x', within: { last: 3, unit: 'weeks' } } })).toBe(
      false,
    );
  });

  it('answers on the paths it names, resolved against its servers', async () => {
    const admin = { authorization: `Bearer ${TEST_ADMIN_KEY}`, 'content-type': 'application/json' };
    expect(doc.paths['/api/sources'].get).toBeDefined();
    const listed = await fetch(resolve('/api/sources'), { headers: admin });
    expect(listed.status).toBe(200);

    expect(doc.paths['/api/sources'].post).toBeDefined();
    const created = await fetch(resolve('/api/sources'), {
      method: 'POST',
      headers: admin,
      body: JSON.stringify({ name: 'openapi test' }),
    });
    expect(created.status).toBe(201);
    const source = (await created.json()) as Any;

    expect(doc.paths['/api/sources/{id}'].get).toBeDefined();
    const one = await fetch(resolve(`/api/sources/${source.id}`), { headers: admin });
    expect(((await one.json()) as Any).name).toBe('openapi test');

    expect(doc.paths['/v1/track'].post.security).toEqual([{ writeKey: [] }]);
    const tracked = await fetch(resolve('/v1/track'), {
      method: 'POST',
      headers: { authorization: basicAuth(source.writeKey), 'content-type': 'application/json' },
      body: JSON.stringify({ type: 'track', event: 'Described', userId: 'openapi-1' }),
    });
    expect(tracked.status).toBe(200);
    expect(await tracked.json()).toEqual({ success: true });

    // A rule the description's own example gives is one the server takes.
    expect(doc.paths['/api/audiences'].post).toBeDefined();
    const audience = await fetch(resolve('/api/audiences'), {
      method: 'POST',
      headers: admin,
      body: JSON.stringify({ key: 'described', name: 'Described', rule: doc.components.schemas.Rule.example }),
    });
    expect(audience.status, await audience.clone().text()).toBe(201);

    // And what it does not name is not there: the admin API has no unprefixed paths.
    expect((await fetch(`${cairn.url}/sources`, { headers: admin })).status).toBe(404);
  });
});

describe('apiDescription', () => {
  it('points servers at the configured public URL and prefixes admin routes with /api', () => {
    const api = new OpenAPIHono();
    api.openapi(
      {
        method: 'get',
        path: '/things/{id}',
        request: { params: z.object({ id: z.string() }) },
        responses: { 200: { description: 'A thing' } },
      },
      (c) => c.body(null, 200),
    );
    const doc = apiDescription(api.openAPIRegistry, { publicUrl: 'https://cairn.example.com' })();
    expect(doc.servers).toEqual([{ url: 'https://cairn.example.com', description: expect.any(String) }]);
    expect(Object.keys(doc.paths ?? {})).toEqual(
      expect.arrayContaining(['/api/things/{id}', '/v1/batch', '/v1/alias']),
    );
    expect(Object.keys(doc.paths ?? {})).not.toContain('/things/{id}');
  });
});
