import type { OpenAPIHono } from '@hono/zod-openapi';
import { z } from '@hono/zod-openapi';

type OpenAPIRegistry = OpenAPIHono['openAPIRegistry'];

import { LIMITS } from '@cairn/core';
import { ErrorSchema } from './schemas.ts';

const Id = z.union([z.string(), z.number()]);
const Obj = z.record(z.string(), z.unknown());

const EventSchema = z
  .object({
    type: z.enum(['track', 'identify', 'page', 'screen', 'group', 'alias']).optional(),
    messageId: z
      .string()
      .optional()
      .openapi({ description: 'Generated when absent; (source, messageId) is stored once' }),
    userId: Id.optional(),
    anonymousId: Id.optional().openapi({ description: 'userId or anonymousId is required' }),
    event: z.string().optional().openapi({ description: 'Required for track' }),
    name: z.string().optional(),
    category: z.string().optional(),
    groupId: Id.optional().openapi({ description: 'Required for group' }),
    previousId: Id.optional().openapi({ description: 'Required for alias' }),
    properties: Obj.optional(),
    traits: Obj.optional(),
    context: Obj.optional(),
    integrations: Obj.optional(),
    timestamp: z.string().optional().openapi({ description: 'ISO-8601; corrected for clock skew with sentAt' }),
    originalTimestamp: z.string().optional(),
    sentAt: z.string().optional(),
  })
  .openapi('TrackingEvent');

const RejectedSchema = z
  .object({
    error: z.object({
      code: z.enum(['invalid_events', 'event_too_large']),
      message: z.string(),
      details: z.object({
        accepted: z.number().int().openapi({ description: 'Valid events of the request, stored' }),
        rejected: z.array(z.object({ index: z.number().int(), path: z.string(), message: z.string() })),
      }),
    }),
  })
  .openapi('RejectedEvents');

const responses = {
  200: {
    description: 'Committed',
    content: { 'application/json': { schema: z.object({ success: z.literal(true) }) } },
  },
  400: {
    description: 'Invalid events (the valid ones of a batch are stored) or an unreadable body',
    content: { 'application/json': { schema: z.union([RejectedSchema, ErrorSchema]) } },
  },
  401: { description: 'Missing or unknown write key', content: { 'application/json': { schema: ErrorSchema } } },
  403: {
    description: 'Source disabled or origin not allowed',
    content: { 'application/json': { schema: ErrorSchema } },
  },
  413: { description: 'Request, event or batch too large', content: { 'application/json': { schema: ErrorSchema } } },
  415: {
    description: 'Unsupported content type or encoding',
    content: { 'application/json': { schema: ErrorSchema } },
  },
  429: {
    description: "Over the source's events per second on this server: nothing stored; retry after Retry-After",
    content: { 'application/json': { schema: ErrorSchema } },
  },
  503: { description: 'Not stored; retry (Retry-After)', content: { 'application/json': { schema: ErrorSchema } } },
};

/**
 * Adds the tracking API (served outside /api by the ingest stage) to the OpenAPI description.
 *
 * @example
 * describeTrackingApi(api.openAPIRegistry);
 */
export function describeTrackingApi(registry: OpenAPIRegistry): void {
  registry.registerComponent('securitySchemes', 'writeKey', {
    type: 'http',
    scheme: 'basic',
    description: 'The write key as the Basic username (empty password), or `writeKey` in the JSON body',
  });
  const limits = `Limits: ${LIMITS.maxEventBytes} bytes per event, ${LIMITS.maxRequestBytes} bytes per request (after gzip), ${LIMITS.maxBatchEvents} events per batch.`;
  registry.registerPath({
    method: 'post',
    path: '/v1/batch',
    tags: ['Tracking'],
    summary: 'Send a batch of events (Segment-compatible)',
    description: `Answers 200 only after the events are committed. ${limits} Accepts application/json and text/plain, optionally gzip-encoded. Also at \`/beacon/v1/batch?writeKey=…\` for RudderStack's browser SDK (navigator.sendBeacon, which cannot set headers): the only path that reads the write key from the query string.`,
    security: [{ writeKey: [] }],
    request: {
      body: {
        content: {
          'application/json': {
            schema: z.object({
              batch: z.array(EventSchema),
              sentAt: z.string().optional(),
              writeKey: z.string().optional(),
            }),
          },
        },
      },
    },
    responses,
  });
  for (const type of ['track', 'identify', 'page', 'screen', 'group', 'alias'] as const) {
    registry.registerPath({
      method: 'post',
      path: `/v1/${type}`,
      tags: ['Tracking'],
      summary: `Send one ${type} event`,
      description: `${limits} Also at \`/v1/${type[0]}\`, the path analytics.js 2.0 (Segment's browser SDK) uses.`,
      security: [{ writeKey: [] }],
      request: { body: { content: { 'application/json': { schema: EventSchema } } } },
      responses,
    });
  }
  registry.registerPath({
    method: 'post',
    path: '/v1/b',
    tags: ['Tracking'],
    summary: 'Send a batch of events (analytics.js 2.0 batching delivery)',
    description: `The same as \`/v1/batch\`: the path Segment's browser SDK posts its batches to. A \`writeKey\` repeated in each event is not stored. ${limits}`,
    security: [{ writeKey: [] }],
    request: {
      body: {
        content: {
          'text/plain': {
            schema: z.object({ batch: z.array(EventSchema), sentAt: z.string().optional(), writeKey: z.string() }),
          },
        },
      },
    },
    responses,
  });
}
