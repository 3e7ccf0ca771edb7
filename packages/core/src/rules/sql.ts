/**
 * A parameterised SQL fragment, built without a database driver so that the rule compiler stays free
 * of I/O. Values are never spliced into the text: they become `$n` parameters when rendered.
 * Identifiers come only from the compiler itself (`ident`), which accepts nothing but `[a-z_][a-z0-9_]*`.
 */
export class Fragment {
  constructor(
    readonly parts: readonly string[],
    readonly values: readonly unknown[],
  ) {}

  /**
   * The statement text with `$1..$n` placeholders (numbered from `offset + 1`) and its parameters.
   *
   * @example
   * sql`SELECT ${1}::int`.render(); // { text: 'SELECT $1::int', values: [1] }
   */
  render(offset = 0): { text: string; values: unknown[] } {
    const values: unknown[] = [];
    const text = this.write(values, offset);
    return { text, values };
  }

  private write(values: unknown[], offset: number): string {
    let text = this.parts[0] ?? '';
    for (let i = 0; i < this.values.length; i++) {
      const v = this.values[i];
      if (v instanceof Fragment) text += v.write(values, offset);
      else if (v instanceof Ident) text += v.name;
      else {
        values.push(v);
        text += `$${offset + values.length}`;
      }
      text += this.parts[i + 1] ?? '';
    }
    return text;
  }
}

class Ident {
  constructor(readonly name: string) {}
}

/**
 * Builds a fragment; nested fragments are inlined, other values become parameters.
 *
 * @example
 * const f = sql`t.key = ${'plan'}::text AND ${sql`true`}`;
 */
export function sql(strings: TemplateStringsArray, ...values: unknown[]): Fragment {
  return new Fragment([...strings], values);
}

/**
 * An identifier the compiler made up (a CTE or column alias).
 *
 * @example
 * sql`SELECT 1 AS ${ident('n1')}`;
 */
export function ident(name: string): Ident {
  if (!/^[a-z_][a-z0-9_]*$/.test(name)) throw new Error(`not a safe identifier: ${name}`);
  return new Ident(name);
}

/**
 * Joins fragments with a separator.
 *
 * @example
 * join([sql`a`, sql`b`], sql` AND `);
 */
export function join(fragments: readonly Fragment[], separator: Fragment): Fragment {
  if (!fragments.length) return sql``;
  const parts: string[] = [''];
  const values: unknown[] = [];
  fragments.forEach((f, i) => {
    if (i) {
      values.push(separator);
      parts.push('');
    }
    values.push(f);
    parts.push('');
  });
  return new Fragment(parts, values);
}

/**
 * A column of a compiler-made relation (`r1.v`).
 *
 * @example
 * col('r1', 'v');
 */
export function col(relation: string, column: string): Fragment {
  return sql`${ident(relation)}.${ident(column)}`;
}
