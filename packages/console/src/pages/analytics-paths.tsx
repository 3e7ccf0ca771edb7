// Paths: what people did after (or before) an anchor event, step by step, as ranked lists with bars and
// the paths that ended at each step.
import { useState } from 'preact/hooks';
import { ErrorBox, Field, fmt } from '../ui.tsx';
import {
  AsApiCall,
  apiRange,
  Bar,
  Choice,
  eventMatch,
  Notes,
  PALETTE,
  QueryForm,
  RangeFields,
  usePost,
  useSharedRange,
} from './analytics-common.tsx';

interface Count {
  paths: number;
  people: number;
}
interface PathsAnswer {
  anchors: Count;
  steps: (Count & { step: number; dropOff: Count; nodes: (Count & { node: string; ended: Count })[] })[];
  meta: { notes: string[] };
}

export default function Paths() {
  const [range, setRange] = useSharedRange();
  const [form, setForm] = useState({ anchor: 'Product Viewed', direction: 'after', steps: '3', label: 'event' });
  const bodyOf = () => ({
    range: apiRange(range),
    anchor: eventMatch(form.anchor),
    direction: form.direction,
    steps: Number(form.steps),
    label: form.label,
  });
  const [body, setBody] = useState<ReturnType<typeof bodyOf>>(bodyOf);
  const q = usePost<PathsAnswer>('/analytics/paths', body);
  const set = (k: keyof typeof form) => (v: string) => setForm({ ...form, [k]: v });
  return (
    <>
      <QueryForm label="Paths query" onSubmit={() => setBody(bodyOf())} busy={q.loading}>
        <RangeFields value={range} onChange={setRange} />
        <Field label="Anchor event">
          <input required value={form.anchor} onInput={(e) => set('anchor')((e.target as HTMLInputElement).value)} />
        </Field>
        <Choice
          label="Direction"
          value={form.direction}
          options={[
            ['after', 'What came next'],
            ['before', 'What came before'],
          ]}
          onChange={set('direction')}
        />
        <Field label="Steps">
          <input
            type="number"
            min="1"
            max="10"
            required
            value={form.steps}
            style={{ width: '5em' }}
            onInput={(e) => set('steps')((e.target as HTMLInputElement).value)}
          />
        </Field>
        <Choice
          label="Label nodes by"
          value={form.label}
          options={[
            ['event', 'Event name'],
            ['page', 'Page path'],
          ]}
          onChange={set('label')}
        />
      </QueryForm>
      <ErrorBox error={q.error} />
      {q.loading && <p aria-busy="true">Loading…</p>}
      {q.data && <PathSteps answer={q.data} direction={body.direction} />}
      <AsApiCall path="/analytics/paths" body={body} />
    </>
  );
}

function PathSteps({ answer, direction }: { answer: PathsAnswer; direction: string }) {
  const total = answer.anchors.paths;
  return (
    <div>
      <p>
        {fmt(answer.anchors.paths)} paths of {fmt(answer.anchors.people)} people. Each step lists the events at that
        position {direction === 'after' ? 'after' : 'before'} the anchor, most paths first.
      </p>
      <div class="cols">
        {answer.steps
          .filter((s) => s.step > 0)
          .map((s) => (
            <section key={s.step} aria-labelledby={`path-step-${s.step}`}>
              <h2 id={`path-step-${s.step}`}>
                {direction === 'after' ? 'Step' : 'Step back'} {s.step}
              </h2>
              <table class="grid">
                <caption class="sr-only">
                  Events at step {s.step}, by paths ({fmt(s.dropOff.paths)} paths ended before it)
                </caption>
                <thead>
                  <tr>
                    <th scope="col">Event</th>
                    <th scope="col" class="num">
                      Paths
                    </th>
                    <th scope="col" class="num">
                      People
                    </th>
                    <th scope="col" style={{ width: '35%' }}>
                      <span class="sr-only">Bar</span>
                    </th>
                  </tr>
                </thead>
                <tbody>
                  {s.nodes.map((n) => (
                    <tr key={n.node}>
                      <th scope="row" style={{ fontWeight: 400 }}>
                        {n.node}
                      </th>
                      <td class="num">{fmt(n.paths)}</td>
                      <td class="num">{fmt(n.people)}</td>
                      <td>
                        <Bar value={n.paths} max={total} color={PALETTE[s.step % PALETTE.length]} />
                      </td>
                    </tr>
                  ))}
                  <tr>
                    <th scope="row" class="muted" style={{ fontWeight: 400 }}>
                      Ended before this step
                    </th>
                    <td class="num">{fmt(s.dropOff.paths)}</td>
                    <td class="num">{fmt(s.dropOff.people)}</td>
                    <td>
                      <Bar value={s.dropOff.paths} max={total} color="#8c959f" />
                    </td>
                  </tr>
                </tbody>
              </table>
            </section>
          ))}
      </div>
      <Notes notes={answer.meta.notes} />
    </div>
  );
}
