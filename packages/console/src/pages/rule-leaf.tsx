// The form of one common condition (a leaf of the rule language): a trait compared, an event performed in
// a window, in an audience, has a tag, consent. Each edit returns the leaf with only that field changed,
// so fields the form does not show (a `where`, a `max`) are kept.
import type { JSX } from 'preact';
import { Field, useApi } from '../ui.tsx';

/** A leaf of the rule language, as JSON. */
export type Leaf = Record<string, unknown> & { op: string };

/** The leaves the form edits, with what the "add" menu calls them and a new one's fields. */
export const LEAF_KINDS: { op: string; label: string; fresh: () => Leaf }[] = [
  { op: 'trait', label: 'Trait compare', fresh: () => ({ op: 'trait', trait: '', cmp: '=', value: '' }) },
  {
    op: 'performed',
    label: 'Event count in a window',
    fresh: () => ({ op: 'performed', event: '', min: 1, within: { last: 30, unit: 'days' } }),
  },
  { op: 'in_audience', label: 'In audience', fresh: () => ({ op: 'in_audience', audience: '' }) },
  { op: 'has_tag', label: 'Has tag', fresh: () => ({ op: 'has_tag', tag: '' }) },
  { op: 'consent', label: 'Consent', fresh: () => ({ op: 'consent', purpose: 'marketing', state: 'granted' }) },
];

const SCALAR = ['=', '!=', '<', '<=', '>', '>='];
const LIST = ['in', 'between'];
const TEXT = ['contains', 'starts_with', 'regex'];
const NONE = ['exists', 'is_empty'];
const DAYS = ['within_last', 'within_next', 'older_than', 'anniversary_within'];
const CMPS = [...SCALAR, ...LIST, ...TEXT, ...NONE, ...DAYS];

/** Whether the form can show this leaf (others are edited in the JSON). */
export function formEditable(leaf: unknown): leaf is Leaf {
  if (!leaf || typeof leaf !== 'object') return false;
  const l = leaf as Leaf;
  if (l.op === 'trait') return CMPS.includes(String(l.cmp));
  if (l.op === 'performed') return !l.within || 'last' in (l.within as object);
  return ['in_audience', 'has_tag', 'consent'].includes(l.op);
}

// A typed value from what was typed: numbers and booleans as such, the rest as text.
function typed(text: string, cmp: string): string | number | boolean {
  if (/^-?\d+(\.\d+)?$/.test(text.trim()) && !TEXT.includes(cmp)) return Number(text.trim());
  if ((cmp === '=' || cmp === '!=') && /^(true|false)$/.test(text.trim())) return text.trim() === 'true';
  return text;
}

const shown = (v: unknown) => (Array.isArray(v) ? v.join(', ') : v === undefined || v === null ? '' : String(v));
const inputValue = (e: Event) => (e.target as HTMLInputElement).value;

function withCmp(leaf: Leaf, cmp: string): Leaf {
  const { value, days, ...rest } = leaf;
  const text = shown(value ?? days);
  if (NONE.includes(cmp)) return { ...rest, cmp };
  if (DAYS.includes(cmp)) return { ...rest, cmp, days: Number(text) || 30 };
  if (LIST.includes(cmp)) return { ...rest, cmp, value: text.split(',').map((s) => typed(s.trim(), cmp)) };
  return { ...rest, cmp, value: typed(text, cmp) };
}

function TraitLeaf(props: { leaf: Leaf; onChange: (l: Leaf) => void; describedBy?: string }) {
  const { leaf, onChange } = props;
  const cmp = String(leaf.cmp);
  const aria = { 'aria-describedby': props.describedBy, 'aria-invalid': props.describedBy ? true : undefined };
  const setValue = (text: string) => {
    if (DAYS.includes(cmp)) onChange({ ...leaf, days: Number(text) });
    else if (LIST.includes(cmp)) onChange({ ...leaf, value: text.split(',').map((s) => typed(s.trim(), cmp)) });
    else onChange({ ...leaf, value: typed(text, cmp) });
  };
  return (
    <>
      <Field label="Trait">
        <input
          value={String(leaf.trait ?? '')}
          onInput={(e) => onChange({ ...leaf, trait: inputValue(e) })}
          {...aria}
        />
      </Field>
      <Field label="Comparison">
        <select value={cmp} onChange={(e) => onChange(withCmp(leaf, inputValue(e)))}>
          {CMPS.map((c) => (
            <option key={c} value={c}>
              {c.replaceAll('_', ' ')}
            </option>
          ))}
        </select>
      </Field>
      {!NONE.includes(cmp) && (
        <Field
          label={DAYS.includes(cmp) ? 'Days' : 'Value'}
          hint={LIST.includes(cmp) ? 'Separated by commas' : undefined}
        >
          {DAYS.includes(cmp) ? (
            <input type="number" value={shown(leaf.days)} onInput={(e) => setValue(inputValue(e))} {...aria} />
          ) : (
            <input type="text" value={shown(leaf.value)} onInput={(e) => setValue(inputValue(e))} {...aria} />
          )}
        </Field>
      )}
    </>
  );
}

function PerformedLeaf(props: { leaf: Leaf; onChange: (l: Leaf) => void }) {
  const { leaf, onChange } = props;
  const within = leaf.within as { last: number; unit: string } | undefined;
  const setWithin = (last: string, unit: string) => {
    const { within: _, ...rest } = leaf;
    onChange(last === '' ? rest : { ...rest, within: { last: Number(last), unit } });
  };
  return (
    <>
      <Field label="Event">
        <input value={String(leaf.event ?? '')} onInput={(e) => onChange({ ...leaf, event: inputValue(e) })} />
      </Field>
      <Field label="At least (times)">
        <input
          type="number"
          min={0}
          value={shown(leaf.min ?? 1)}
          onInput={(e) => onChange({ ...leaf, min: Number(inputValue(e)) })}
        />
      </Field>
      <Field label="In the last" hint="Empty: any time">
        <input
          type="number"
          min={1}
          value={shown(within?.last)}
          onInput={(e) => setWithin(inputValue(e), within?.unit ?? 'days')}
        />
      </Field>
      <Field label="Unit">
        <select value={within?.unit ?? 'days'} onChange={(e) => setWithin(shown(within?.last ?? 30), inputValue(e))}>
          <option value="days">days</option>
          <option value="hours">hours</option>
          <option value="minutes">minutes</option>
        </select>
      </Field>
    </>
  );
}

function Choose(props: { label: string; path: string; value: string; onChange: (v: string) => void }) {
  const list = useApi<{ data: { key: string; name: string }[] }>(props.path);
  const keys = list.data?.data ?? [];
  return (
    <Field label={props.label}>
      <select value={props.value} onChange={(e) => props.onChange(inputValue(e))}>
        <option value="">Choose…</option>
        {props.value && !keys.some((k) => k.key === props.value) && <option value={props.value}>{props.value}</option>}
        {keys.map((k) => (
          <option key={k.key} value={k.key}>
            {k.name} ({k.key})
          </option>
        ))}
      </select>
    </Field>
  );
}

/**
 * The fields of one common leaf; `describedBy` names the element holding its error, if any.
 *
 * @example
 * <LeafFields leaf={{ op: 'has_tag', tag: 'vip' }} onChange={set} />
 */
export function LeafFields(props: { leaf: Leaf; onChange: (l: Leaf) => void; describedBy?: string }): JSX.Element {
  const { leaf, onChange } = props;
  switch (leaf.op) {
    case 'trait':
      return <TraitLeaf {...props} />;
    case 'performed':
      return <PerformedLeaf leaf={leaf} onChange={onChange} />;
    case 'in_audience':
      return (
        <Choose
          label="Audience"
          path="/audiences"
          value={String(leaf.audience ?? '')}
          onChange={(v) => onChange({ ...leaf, audience: v })}
        />
      );
    case 'has_tag':
      return (
        <Choose
          label="Tag"
          path="/tags"
          value={String(leaf.tag ?? '')}
          onChange={(v) => onChange({ ...leaf, tag: v })}
        />
      );
    default:
      return (
        <>
          <Field label="Purpose">
            <input value={String(leaf.purpose ?? '')} onInput={(e) => onChange({ ...leaf, purpose: inputValue(e) })} />
          </Field>
          <Field label="State">
            <select value={String(leaf.state)} onChange={(e) => onChange({ ...leaf, state: inputValue(e) })}>
              <option value="granted">granted</option>
              <option value="denied">denied</option>
              <option value="unknown">unknown</option>
            </select>
          </Field>
        </>
      );
  }
}
