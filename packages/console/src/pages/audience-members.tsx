// The current members of an audience or tag (paged), each linking to the person's page, and for an
// audience "why": the rule evaluated now for that person, condition by condition, beside the stored
// membership periods.
import { useState } from 'preact/hooks';
import { qs } from '../api.ts';
import { Link } from '../router.tsx';
import { Badge, fmt, Loaded, Time, useApi } from '../ui.tsx';
import type { Definition, Kind } from './audience-types.ts';

interface Member {
  profileId: string;
  since: string;
  userId: string | null;
  email: string | null;
}

interface Explained {
  rule: { op: string };
  result: boolean;
  value?: unknown;
  description: string;
  children?: Explained[];
}

// An audience's periods say entered/exited; a tag's added/removed, with a reason.
type Period =
  | { enteredAt: string; exitedAt: string | null; enteredBy: string; exitedBy: string | null }
  | {
      addedAt: string;
      removedAt: string | null;
      addedBy: string;
      removedBy: string | null;
      addedReason: string | null;
      removedReason: string | null;
    };

interface Explanation {
  member: boolean;
  /** null: a static tag (no rule). */
  matches: boolean | null;
  at: string;
  tree: Explained | null;
  history: Period[];
}

const period = (p: Period) =>
  'enteredAt' in p
    ? { from: p.enteredAt, to: p.exitedAt, by: p.enteredBy, until: p.exitedBy }
    : {
        from: p.addedAt,
        to: p.removedAt,
        by: p.addedReason ? `${p.addedBy}: ${p.addedReason}` : p.addedBy,
        until: p.removedReason ? `${p.removedBy}: ${p.removedReason}` : p.removedBy,
      };

const PAGE = 50;

/**
 * The members table of a definition, with "why" for each member.
 *
 * @example
 * <Members kind="audience" definition={audience} />
 */
export function Members(props: { kind: Kind; definition: Definition }) {
  const [cursor, setCursor] = useState<string | null>(null);
  const [why, setWhy] = useState<string | null>(null);
  const base = `/${props.kind}s/${props.definition.key}`;
  const page = useApi<{ data: Member[]; next: string | null }>(`${base}/members${qs({ limit: PAGE, cursor })}`);
  return (
    <section aria-labelledby="members-title">
      <h2 id="members-title">Members ({fmt(props.definition.members, 0)})</h2>
      <Loaded state={page}>
        {(p) =>
          p.data.length === 0 ? (
            <p class="muted">No members now.</p>
          ) : (
            <div class="table-scroll">
              <table class="grid">
                <thead>
                  <tr>
                    <th scope="col">Person</th>
                    <th scope="col">Email</th>
                    <th scope="col">Member since</th>
                    <th scope="col">Why</th>
                  </tr>
                </thead>
                <tbody>
                  {p.data.map((m) => (
                    <MemberRow
                      key={m.profileId}
                      m={m}
                      base={base}
                      open={why === m.profileId}
                      onToggle={() => setWhy(why === m.profileId ? null : m.profileId)}
                    />
                  ))}
                </tbody>
              </table>
            </div>
          )
        }
      </Loaded>
      <p>
        {cursor && (
          <button type="button" onClick={() => setCursor(null)}>
            First page
          </button>
        )}{' '}
        {page.data?.next && (
          <button type="button" onClick={() => setCursor(page.data!.next)}>
            Next members
          </button>
        )}
      </p>
    </section>
  );
}

function MemberRow(props: { m: Member; base: string; open: boolean; onToggle: () => void }) {
  const { m } = props;
  const label = m.userId ?? m.email ?? m.profileId;
  return (
    <>
      <tr>
        <td>
          <Link href={`/people/${m.profileId}`}>{label}</Link>
        </td>
        <td>{m.email ?? <span class="muted">—</span>}</td>
        <td>
          <Time at={m.since} />
        </td>
        <td>
          <button type="button" class="link" aria-expanded={props.open} onClick={props.onToggle}>
            Why {label}?
          </button>
        </td>
      </tr>
      {props.open && (
        <tr>
          <td colSpan={4}>
            <Why path={`${props.base}/explain/${m.profileId}`} />
          </td>
        </tr>
      )}
    </>
  );
}

function Why(props: { path: string }) {
  const state = useApi<Explanation>(props.path);
  return (
    <Loaded state={state}>
      {(x) => (
        <div class="why">
          {x.matches === null ? (
            <p>A static tag: set and removed by hand or by flows.</p>
          ) : (
            <p>
              {x.matches ? 'The rule holds for this person now' : 'The rule does not hold for this person now'}
              {x.member !== x.matches && ' (membership catches up shortly)'}:
            </p>
          )}
          {x.tree && (
            <ul class="why-tree">
              <WhyNode node={x.tree} />
            </ul>
          )}
          <p class="muted">
            {x.history.map(period).map((h) => (
              <span key={h.from}>
                In since <Time at={h.from} /> ({h.by})
                {h.to && (
                  <>
                    {' '}
                    until <Time at={h.to} /> ({h.until})
                  </>
                )}
                .{' '}
              </span>
            ))}
          </p>
        </div>
      )}
    </Loaded>
  );
}

function WhyNode(props: { node: Explained }) {
  const n = props.node;
  return (
    <li>
      <Badge value={n.result ? 'true' : 'false'} tone={n.result ? 'ok' : 'bad'} /> {n.description}
      {'value' in n && n.value !== undefined && (
        <span class="muted">
          {' '}
          (value: <code>{JSON.stringify(n.value)}</code>)
        </span>
      )}
      {n.children && (
        <ul>
          {n.children.map((c, i) => (
            <WhyNode key={i} node={c} />
          ))}
        </ul>
      )}
    </li>
  );
}
