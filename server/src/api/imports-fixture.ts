// A generated profile CSV for the import tests: 1% bad rows (wrong dates, bad emails, duplicate ids)
// spread over the file, with the lines that must be refused.

/** The file and the lines (header = line 1) that must be refused, with a word of the reason. */
export function generate(rows: number, prefix: string) {
  const bad = new Map<number, string>();
  const lines = ['id,email,name,birthday,spend,newsletter,vip,note'];
  for (let i = 0; i < rows; i++) {
    const line = i + 2;
    let id = `${prefix}${i}`;
    let email = `${prefix}${i}@example.com`;
    let birthday = `19${50 + (i % 50)}-0${1 + (i % 9)}-1${i % 10}`;
    // 1% bad, spread over the file, three kinds.
    if (i % 100 === 37) {
      const kind = ((i / 100) % 3) | 0;
      if (kind === 0) {
        birthday = `2001-13-${i % 28}`;
        bad.set(line, 'birthday');
      } else if (kind === 1) {
        email = `${prefix}${i}.example.com`;
        bad.set(line, 'email');
      } else {
        id = `${prefix}${i - 30}`;
        bad.set(line, 'duplicate');
      }
    }
    const name = i % 7 === 0 ? `"Doe, ${i}"` : `Person ${i}`;
    lines.push(`${id},${email},${name},${birthday},${(i % 500) + 0.5},${i % 2 ? 'yes' : 'no'},${i % 10 === 0},x`);
  }
  return { text: `${lines.join('\n')}\n`, bad };
}

/** A text in pieces of `size` characters (an upload that arrives in parts). */
export function* chunks(text: string, size: number) {
  for (let i = 0; i < text.length; i += size) yield text.slice(i, i + size);
}
