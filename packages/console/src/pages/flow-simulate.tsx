// Simulating a person (POST /api/flows/{id}/simulate, flows:read): the same engine on a virtual clock,
// nothing sent or stored. The path it took is handed up to be drawn on the diagram, and listed here.
import { useState } from 'preact/hooks';
import { api } from '../api.ts';
import { ErrorBox, Field, useAction } from '../ui.tsx';
import { edgeKey, type Flow, type SimPath, TRIGGER } from './flow-model.ts';

interface Step {
  at: number;
  node?: string;
  type?: string;
  outcome: string;
  to?: string;
  reason: string;
}
interface Simulation {
  entered?: { at: number; reason: string };
  refused: { at: number; reason: string }[];
  path: string[];
  steps: Step[];
  messages: { at: number; node: string; destination: string; subject?: string; body: string }[];
  end: { status: string; node?: string | null; reason?: string; due?: number };
}

/** The path as the diagram draws it: the nodes, and each edge a step took (the entry from the trigger). */
function pathOf(sim: Simulation): SimPath {
  const edges = new Set<string>();
  for (const s of sim.steps) {
    if (!s.to) continue;
    if (s.type === 'enter') edges.add(edgeKey({ from: TRIGGER, on: 'entered', to: s.to }));
    else if (s.node) edges.add(edgeKey({ from: s.node, on: s.outcome, to: s.to }));
  }
  return { nodes: sim.path, edges };
}

/** `+1d 2h 5m` after the start. */
function after(ms: number): string {
  const m = Math.round(ms / 60_000);
  if (m <= 0) return 'at once';
  const [d, h, min] = [Math.floor(m / 1440), Math.floor((m % 1440) / 60), m % 60];
  return `+${[d && `${d}d`, h && `${h}h`, min && `${min}m`].filter(Boolean).join(' ')}`;
}

function parseObject(text: string, what: string): Record<string, unknown> {
  try {
    const v = JSON.parse(text || '{}');
    if (v && typeof v === 'object' && !Array.isArray(v)) return v;
  } catch {
    // reported below
  }
  throw new Error(`${what} must be a JSON object`);
}

/** For a trigger on entering an audience or gaining a tag: the script change that fires it, said in words. */
function entryChange(t: Flow['definition']['trigger']) {
  if (t?.type === 'audience_entered' && t.audience)
    return { change: { audiences: [t.audience] }, hint: `Without one, the person enters ${t.audience} at the start` };
  if (t?.type === 'tag_added' && t.tag)
    return { change: { tags: [t.tag] }, hint: `Without one, the person is tagged ${t.tag} at the start` };
  return undefined;
}

/**
 * The simulate section: who (a profile id and/or traits), what they do (the trigger event), how long.
 *
 * @example
 * <FlowSimulate flow={flow} onPath={setPath} />
 */
export function FlowSimulate(props: { flow: Flow; onPath: (p: SimPath | undefined) => void }) {
  const t = props.flow.definition.trigger;
  const [form, setForm] = useState({
    profile: '',
    traits: '{}',
    event: t?.type === 'event' ? (t.event ?? '') : '',
    properties: '{}',
    days: '30',
    use: props.flow.version === null ? 'draft' : 'live',
  });
  const set = (k: keyof typeof form) => (e: Event) =>
    setForm({ ...form, [k]: (e.target as HTMLInputElement | HTMLSelectElement).value });
  // What happens at the start: the event sent, else (a trigger on an audience or a tag) the person joins it.
  const joins = entryChange(t);
  const run = useAction(async () => {
    const start = Date.now();
    const event = form.event.trim();
    const script = event
      ? { event: { type: 'track', event, properties: parseObject(form.properties, 'Properties') } }
      : joins?.change;
    const body = {
      profile: {
        ...(form.profile.trim() ? { id: form.profile.trim() } : {}),
        traits: parseObject(form.traits, 'Traits'),
      },
      start,
      horizon: { days: Number(form.days) || 30 },
      use: form.use,
      ...(script ? { script: [{ at: start, ...script }] } : {}),
    };
    const r = await api<{ simulation: Simulation }>(`/flows/${encodeURIComponent(props.flow.id)}/simulate`, {
      method: 'POST',
      body,
    });
    props.onPath(pathOf(r.simulation));
    return { sim: r.simulation, start };
  });
  const res = run.result;
  return (
    <section aria-labelledby="fl-sim">
      <h2 id="fl-sim">Simulate a person</h2>
      <form
        class="filters"
        aria-label="Simulate a person"
        onSubmit={(e) => {
          e.preventDefault();
          run.run();
        }}
      >
        <Field label="Profile id (optional)">
          <input value={form.profile} onInput={set('profile')} placeholder="an existing person" />
        </Field>
        <Field label="Traits (JSON)">
          <input value={form.traits} onInput={set('traits')} />
        </Field>
        <Field label="Event sent" hint={joins && !form.event.trim() ? joins.hint : undefined}>
          <input value={form.event} onInput={set('event')} />
        </Field>
        <Field label="Event properties (JSON)">
          <input value={form.properties} onInput={set('properties')} />
        </Field>
        <Field label="Days to run">
          <input type="number" min="1" max="3650" value={form.days} onInput={set('days')} style={{ width: '6em' }} />
        </Field>
        <Field label="Version">
          <select value={form.use} onChange={set('use')}>
            {props.flow.version !== null && <option value="live">live version {props.flow.version}</option>}
            <option value="draft">working copy</option>
          </select>
        </Field>
        <button type="submit" class="primary" disabled={run.busy}>
          Simulate
        </button>
        {res && (
          <button type="button" onClick={() => props.onPath(undefined)}>
            Clear path
          </button>
        )}
      </form>
      <ErrorBox error={run.error} />
      {res && <SimulationResult sim={res.sim} start={res.start} />}
    </section>
  );
}

function SimulationResult(props: { sim: Simulation; start: number }) {
  const { sim, start } = props;
  return (
    <div aria-live="polite">
      <p>
        <strong>
          {sim.entered ? `Entered ${after(sim.entered.at - start)}` : 'Did not enter'}; ends{' '}
          {sim.end.status.replace('_', ' ')}
          {sim.end.node ? ` at ${sim.end.node}` : ''}
        </strong>
        {sim.end.reason ? ` (${sim.end.reason})` : ''}
        {sim.refused.length > 0 && ` — refused: ${sim.refused.map((r) => r.reason).join('; ')}`}
      </p>
      {sim.path.length > 0 && (
        <ol aria-label="Simulated path" style={{ display: 'flex', flexWrap: 'wrap', gap: '4px 24px', paddingLeft: 20 }}>
          {sim.path.map((n, i) => (
            <li key={`${n}-${i}`}>
              <code>{n}</code>
            </li>
          ))}
        </ol>
      )}
      {sim.messages.length > 0 && (
        <>
          <h3>Messages it would send</h3>
          <ul>
            {sim.messages.map((m) => (
              <li key={`${m.node}-${m.at}`}>
                {after(m.at - start)} <code>{m.node}</code> → {m.destination}:{' '}
                {m.subject && <strong>{m.subject}</strong>} {m.body}
              </li>
            ))}
          </ul>
        </>
      )}
      <details>
        <summary>Every step ({sim.steps.length})</summary>
        <div class="table-scroll">
          <table class="grid">
            <thead>
              <tr>
                <th scope="col">When</th>
                <th scope="col">Node</th>
                <th scope="col">Outcome</th>
                <th scope="col">Why</th>
              </tr>
            </thead>
            <tbody>
              {sim.steps.map((s, i) => (
                <tr key={i}>
                  <td>{after(s.at - start)}</td>
                  <td>{s.node ?? s.type}</td>
                  <td>
                    {s.outcome}
                    {s.to ? ` → ${s.to}` : ''}
                  </td>
                  <td>{s.reason}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      </details>
    </div>
  );
}
