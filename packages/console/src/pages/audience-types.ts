// What the audience pages read from the API.

/** An audience or a tag as the API shows it (tags have no description nor enabled flag). */
export interface Definition {
  key: string;
  name: string;
  description?: string | null;
  rule: unknown;
  words: string | null;
  enabled?: boolean;
  members: number;
  kind?: 'static' | 'dynamic';
  computedAt?: string | null;
}

/** Which resource a page shows. */
export type Kind = 'audience' | 'tag';
