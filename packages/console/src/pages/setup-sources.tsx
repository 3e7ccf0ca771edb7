// Setup → Sources: each source's write key and its snippet tag ready to paste (GET /api/sources/{id}/snippet),
// and a form creating a source (sources:write).
import { useRef, useState } from 'preact/hooks';
import { api } from '../api.ts';
import { Badge, ErrorBox, Field, Loaded, Time, useAction, useApi, useCan } from '../ui.tsx';
import { SetupLayout } from './setup-nav.tsx';
import { CopyButton } from './setup-parts.tsx';

interface Source {
  id: string;
  name: string;
  writeKey: string;
  allowedOrigins: string[];
  enabled: boolean;
  createdAt: string;
}
interface Snippet {
  tag: string;
  version: string;
}

// The source of Cairn's own events (unsubscribes): it never takes tracking calls.
const INTERNAL = 'cairn';

export default function SetupSources() {
  const list = useApi<{ data: Source[] }>('/sources');
  const canWrite = useCan('sources:write');
  return (
    <SetupLayout title="Sources">
      <p class="muted">
        Paste a source's tag into the <code>&lt;head&gt;</code> of every page of its website; servers send with its
        write key as the HTTP Basic user name (<code>POST /v1/track</code>).
      </p>
      {canWrite && <CreateSource onCreated={list.reload} />}
      <Loaded state={list}>
        {({ data }) => (
          <>
            {data
              .filter((s) => s.id !== INTERNAL)
              .map((s) => (
                <SourceCard key={s.id} s={s} />
              ))}
          </>
        )}
      </Loaded>
    </SetupLayout>
  );
}

function SourceCard({ s }: { s: Source }) {
  const snippet = useApi<Snippet>(`/sources/${encodeURIComponent(s.id)}/snippet`);
  const area = useRef<HTMLTextAreaElement>(null);
  return (
    <section class="card" aria-labelledby={`src-${s.id}`} style={{ margin: '12px 0' }}>
      <h2 id={`src-${s.id}`} style={{ marginTop: 0 }}>
        {s.name} {s.enabled ? <Badge value="enabled" tone="ok" /> : <Badge value="disabled" tone="warn" />}
      </h2>
      <dl class="facts">
        <dt>Id</dt>
        <dd>
          <code>{s.id}</code>
        </dd>
        <dt>Write key</dt>
        <dd>
          <code>{s.writeKey}</code> <CopyButton text={s.writeKey} label="Copy the write key" />
        </dd>
        <dt>Allowed origins</dt>
        <dd>{s.allowedOrigins.length ? s.allowedOrigins.join(', ') : <span class="muted">any</span>}</dd>
        <dt>Created</dt>
        <dd>
          <Time at={s.createdAt} />
        </dd>
      </dl>
      <Loaded state={snippet}>
        {(sn) => (
          <div style={{ marginTop: '10px' }}>
            <label class="field">
              <span>
                Snippet tag for {s.name} (version {sn.version})
              </span>
              <textarea ref={area} readOnly rows={3} value={sn.tag} onFocus={() => area.current?.select()} />
            </label>
            <p style={{ margin: '6px 0 0' }}>
              <CopyButton text={sn.tag} label={`Copy the snippet tag for ${s.name}`} target={() => area.current} />
            </p>
          </div>
        )}
      </Loaded>
    </section>
  );
}

function CreateSource(props: { onCreated: () => void }) {
  const [form, setForm] = useState({ name: '', origins: '' });
  const create = useAction(async () => {
    const allowedOrigins = form.origins
      .split(/[\s,]+/)
      .map((o) => o.trim())
      .filter(Boolean);
    const created = await api<Source>('/sources', { method: 'POST', body: { name: form.name, allowedOrigins } });
    setForm({ name: '', origins: '' });
    props.onCreated();
    return created;
  });
  return (
    <form
      class="filters"
      aria-label="Create a source"
      onSubmit={(e) => {
        e.preventDefault();
        create.run();
      }}
    >
      <Field label="Source name">
        <input
          required
          value={form.name}
          onInput={(e) => setForm({ ...form, name: (e.target as HTMLInputElement).value })}
        />
      </Field>
      <Field label="Allowed origins" hint="Optional, separated by spaces: https://shop.example">
        <input
          value={form.origins}
          onInput={(e) => setForm({ ...form, origins: (e.target as HTMLInputElement).value })}
        />
      </Field>
      <button type="submit" class="primary" disabled={create.busy}>
        Create source
      </button>
      <p role="status" class={create.result ? '' : 'sr-only'}>
        {create.result ? `Created ${create.result.name}.` : ''}
      </p>
      <ErrorBox error={create.error} />
    </form>
  );
}
