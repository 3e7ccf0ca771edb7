// Audiences and tags: each with its rule in words, its member count now and a sparkline of members per
// day; "New" for those who may write.
import { Link } from '../router.tsx';
import { Badge, fmt, Loaded, PageHeader, useApi, useCan } from '../ui.tsx';
import { Sparkline } from './audience-spark.tsx';
import { audienceStyles } from './audience-style.ts';
import type { Definition } from './audience-types.ts';

export default function Audiences() {
  audienceStyles();
  const canWrite = useCan('audiences:write');
  const audiences = useApi<{ data: Definition[] }>('/audiences');
  const tags = useApi<{ data: Definition[] }>('/tags');
  return (
    <>
      <PageHeader title="Audiences and tags">
        {canWrite && (
          <>
            <Link class="button primary" href="/audiences/new">
              New audience
            </Link>
            <Link class="button" href="/tags/new">
              New tag
            </Link>
          </>
        )}
      </PageHeader>
      <h2 id="audiences-title">Audiences</h2>
      <Loaded state={audiences}>
        {(a) =>
          a.data.length === 0 ? (
            <p class="muted">No audiences yet.</p>
          ) : (
            <DefinitionTable kind="audiences" rows={a.data} labelledBy="audiences-title" />
          )
        }
      </Loaded>
      <h2 id="tags-title">Tags</h2>
      <Loaded state={tags}>
        {(t) =>
          t.data.length === 0 ? (
            <p class="muted">No tags yet.</p>
          ) : (
            <DefinitionTable kind="tags" rows={t.data} labelledBy="tags-title" />
          )
        }
      </Loaded>
    </>
  );
}

function DefinitionTable(props: { kind: 'audiences' | 'tags'; rows: Definition[]; labelledBy: string }) {
  return (
    <div class="table-scroll">
      <table class="grid definitions" aria-labelledby={props.labelledBy}>
        <thead>
          <tr>
            <th scope="col">Name</th>
            <th scope="col">Rule</th>
            <th scope="col" class="num">
              Members
            </th>
            <th scope="col">Last 30 days</th>
            <th scope="col">State</th>
          </tr>
        </thead>
        <tbody>
          {props.rows.map((d) => (
            <tr key={d.key}>
              <td>
                <Link href={`/${props.kind}/${d.key}`}>{d.name}</Link>
                <div class="muted">
                  <code>{d.key}</code>
                </div>
              </td>
              <td class="words">{d.words ?? <span class="muted">Static: set on people by hand or by flows</span>}</td>
              <td class="num">{fmt(d.members, 0)}</td>
              <td>
                <Sparkline path={`/${props.kind}/${d.key}`} />
              </td>
              <td>
                <State d={d} />
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function State(props: { d: Definition }) {
  const { d } = props;
  if (d.kind) return <Badge value={d.kind} tone="info" />;
  if (d.enabled === false) return <Badge value="disabled" tone="warn" />;
  if (d.computedAt === null) return <Badge value="computing" tone="warn" />;
  return <Badge value="live" />;
}
