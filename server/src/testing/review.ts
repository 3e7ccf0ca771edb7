import { type ApiAnswer, adminApi } from './http.ts';

type Api = ReturnType<typeof adminApi>;

// One second admin key per server (by URL): the reviewer who approves what the test admin key wrote.
const reviewers = new Map<string, Promise<Api>>();

/**
 * The admin API as a second admin (an admin key created once per server with the test admin key): a
 * different person from the test admin key, so it may approve flows that key edited.
 *
 * @example
 * const reviewer = await reviewerApi(cairn.url);
 * await reviewer(`/flows/${id}/approve`, { method: 'POST', body: '{}' });
 */
export function reviewerApi(baseUrl: string): Promise<Api> {
  let reviewer = reviewers.get(baseUrl);
  if (!reviewer) {
    reviewer = (async () => {
      const created = await adminApi(baseUrl)('/keys', {
        method: 'POST',
        body: JSON.stringify({ name: 'test reviewer', role: 'admin' }),
      });
      if (created.status !== 201)
        throw new Error(`creating the reviewer's key: HTTP ${created.status} ${created.text}`);
      return adminApi(baseUrl, created.body.key as string);
    })();
    reviewers.set(baseUrl, reviewer);
    // A failed creation is not kept: the next call tries again.
    reviewer.catch(() => reviewers.delete(baseUrl));
  }
  return reviewer;
}

/**
 * Makes a saved flow's working copy live the way review requires: submitted by the test admin key
 * (its author), approved by a second admin ({@link reviewerApi}), published. Returns the first answer
 * that is not a 200 (an invalid flow's 400 at submit), else the publish's answer (the flow, live).
 *
 * @example
 * expect((await approveAndPublish(cairn.url, flowId)).status).toBe(200);
 */
export async function approveAndPublish(baseUrl: string, flowId: string): Promise<ApiAnswer> {
  const author = adminApi(baseUrl);
  const post = (api: Api, step: string) => api(`/flows/${flowId}/${step}`, { method: 'POST', body: '{}' });
  const submitted = await post(author, 'submit');
  if (submitted.status !== 200) return submitted;
  const approved = await post(await reviewerApi(baseUrl), 'approve');
  if (approved.status !== 200) return approved;
  return post(author, 'publish');
}
