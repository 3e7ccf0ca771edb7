// The rule editor: a form for the common conditions beside the rule's JSON, both views of one text.
// The form writes into the JSON; JSON typed by hand shows in the form when it parses. A problem the API
// reports at a path is shown beside the condition at fault and at its line of the JSON.
import { useState } from 'preact/hooks';
import { formEditable, LEAF_KINDS, type Leaf, LeafFields } from './rule-leaf.tsx';
import { lineOf, parseRule, type RuleIssue, under } from './rule-paths.ts';

/** The rule a new audience or tag starts from: one trait comparison to fill in. */
export const NEW_RULE = { op: 'and', rules: [LEAF_KINDS[0]!.fresh()] };

const pathText = (path: (string | number)[]) => (path.length ? `rule.${path.join('.')}` : 'rule');

/**
 * The form and the JSON of one rule. `text` is the JSON as typed; `issues` the API's problems with it.
 *
 * @example
 * <RuleEditor text={text} onText={setText} issues={issues} />
 */
export function RuleEditor(props: { text: string; onText: (t: string) => void; issues: RuleIssue[] }) {
  const parsed = parseRule(props.text);
  const write = (rule: unknown) => props.onText(JSON.stringify(rule, null, 2));
  return (
    <div class="rule-editor">
      <section aria-labelledby="rule-form-title" class="rule-form">
        <h2 id="rule-form-title">Conditions</h2>
        {'rule' in parsed ? (
          <RuleForm rule={parsed.rule} onRule={write} issues={props.issues} />
        ) : (
          <p class="muted">The JSON does not parse: fix it there (line {parsed.line}) to use the form again.</p>
        )}
      </section>
      <RuleJson
        text={props.text}
        onText={props.onText}
        issues={'rule' in parsed ? props.issues : [{ path: [], message: parsed.error }]}
        syntaxLine={'rule' in parsed ? undefined : parsed.line}
      />
    </div>
  );
}

function RuleForm(props: { rule: unknown; onRule: (r: unknown) => void; issues: RuleIssue[] }) {
  const [adding, setAdding] = useState(LEAF_KINDS[0]!.op);
  const root = (props.rule ?? {}) as Leaf;
  const combined = (root.op === 'and' || root.op === 'or') && Array.isArray(root.rules);
  const children: unknown[] = combined ? (root.rules as unknown[]) : [root];
  const pathOf = (i: number) => (combined ? ['rules', i] : []);
  const setChild = (i: number, leaf: unknown) =>
    props.onRule(combined ? { ...root, rules: children.map((c, j) => (j === i ? leaf : c)) } : leaf);
  const remove = (i: number) =>
    props.onRule(combined ? { ...root, rules: children.filter((_, j) => j !== i) } : { op: 'and', rules: [] });
  const add = () => {
    const fresh = LEAF_KINDS.find((k) => k.op === adding)!.fresh();
    props.onRule(combined ? { ...root, rules: [...children, fresh] } : { op: 'and', rules: [root, fresh] });
  };
  // Problems not under one condition: the rule as a whole.
  const general = combined ? props.issues.filter((i) => !children.some((_, n) => under(i.path, pathOf(n)))) : [];
  if (!combined && !formEditable(root)) {
    return <p class="muted">This rule's top level is edited in the JSON.</p>;
  }
  return (
    <>
      {combined && (
        <label class="field inline">
          <span>Match</span>
          <select
            value={String(root.op)}
            onChange={(e) => props.onRule({ ...root, op: (e.target as HTMLSelectElement).value })}
          >
            <option value="and">all of these conditions</option>
            <option value="or">any of these conditions</option>
          </select>
        </label>
      )}
      {general.map((i) => (
        <p key={`${i.path.join('.')}:${i.message}`} class="error leaf-error">
          <code>{pathText(i.path)}</code>: {i.message}
        </p>
      ))}
      {children.map((child, i) => (
        <Condition
          key={i}
          n={i + 1}
          leaf={child}
          issues={props.issues.filter((is) => under(is.path, pathOf(i)))}
          onChange={(l) => setChild(i, l)}
          onRemove={() => remove(i)}
        />
      ))}
      <div class="add-condition">
        <label class="field inline">
          <span>New condition</span>
          <select value={adding} onChange={(e) => setAdding((e.target as HTMLSelectElement).value)}>
            {LEAF_KINDS.map((k) => (
              <option key={k.op} value={k.op}>
                {k.label}
              </option>
            ))}
          </select>
        </label>
        <button type="button" onClick={add}>
          Add condition
        </button>
      </div>
    </>
  );
}

function Condition(props: {
  n: number;
  leaf: unknown;
  issues: RuleIssue[];
  onChange: (l: Leaf) => void;
  onRemove: () => void;
}) {
  const errorId = `condition-${props.n}-error`;
  const bad = props.issues.length > 0;
  const kind = formEditable(props.leaf) ? LEAF_KINDS.find((k) => k.op === (props.leaf as Leaf).op) : undefined;
  const op = (props.leaf as Leaf | null)?.op;
  return (
    <fieldset class={`leaf${bad ? ' invalid' : ''}`} aria-describedby={bad ? errorId : undefined}>
      <legend>
        Condition {props.n}: {kind?.label ?? (op ? `${String(op).replaceAll('_', ' ')} (in the JSON)` : 'in the JSON')}
      </legend>
      <div class="leaf-fields">
        {kind ? (
          <LeafFields leaf={props.leaf as Leaf} onChange={props.onChange} describedBy={bad ? errorId : undefined} />
        ) : (
          <p class="muted">Edited in the JSON.</p>
        )}
        <button type="button" class="link" onClick={props.onRemove}>
          Remove condition {props.n}
        </button>
      </div>
      {bad && (
        <div id={errorId} class="error leaf-error">
          {props.issues.map((i) => (
            <p key={`${i.path.join('.')}:${i.message}`}>
              <code>{pathText(i.path)}</code>: {i.message}
            </p>
          ))}
        </div>
      )}
    </fieldset>
  );
}

function RuleJson(props: { text: string; onText: (t: string) => void; issues: RuleIssue[]; syntaxLine?: number }) {
  const lines = props.text.split('\n').length;
  const located = props.issues.map((i) => ({
    ...i,
    line: props.syntaxLine ?? lineOf(props.text, i.path),
  }));
  const bad = new Set(located.map((i) => i.line));
  return (
    <section class="rule-json">
      <h2 id="rule-json-title">
        <label for="rule-json">Rule (JSON)</label>
      </h2>
      <div class="code">
        <pre class="gutter" aria-hidden="true">
          {Array.from({ length: lines }, (_, n) => (
            <span key={n} class={bad.has(n + 1) ? 'bad' : undefined}>
              {n + 1}
              {'\n'}
            </span>
          ))}
        </pre>
        <textarea
          id="rule-json"
          rows={lines + 1}
          wrap="off"
          spellcheck={false}
          value={props.text}
          aria-invalid={located.length ? true : undefined}
          aria-describedby={located.length ? 'rule-json-errors' : undefined}
          onInput={(e) => props.onText((e.target as HTMLTextAreaElement).value)}
        />
      </div>
      {located.length > 0 && (
        <ul id="rule-json-errors" class="error json-errors">
          {located.map((i) => (
            <li key={`${i.line}:${i.message}`}>
              Line {i.line}: {i.path.length > 0 && <code>{pathText(i.path)}</code>} {i.message}
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}
