// The audience pages' own styles, added to the document once when one of them is first opened (the
// console's CSP allows inline styles; the shared style.css keeps the first load small).
const CSS = `
a.button { display: inline-block; padding: 6px 12px; border: 1px solid var(--line); border-radius: 6px;
  background: #fff; color: var(--fg); text-decoration: none; }
a.button.primary { background: var(--accent); border-color: var(--accent); color: #fff; }
table.definitions { table-layout: fixed; min-width: 640px; }
table.definitions th:nth-child(1) { width: 22%; }
table.definitions th:nth-child(3) { width: 90px; }
table.definitions th:nth-child(4) { width: 150px; }
table.definitions th:nth-child(5) { width: 110px; }
table.definitions td { overflow-wrap: anywhere; }
.spark { width: 120px; height: 32px; border-bottom: 1px solid var(--line); }
.rule-editor { display: grid; grid-template-columns: minmax(0, 1fr) minmax(0, 1fr); gap: 16px 24px; margin-top: 12px; }
@media (max-width: 900px) { .rule-editor { grid-template-columns: minmax(0, 1fr); } }
.rule-editor h2 { margin-top: 0; }
.field.inline { flex-direction: row; align-items: center; gap: 8px; margin-bottom: 10px; }
fieldset.leaf { border: 1px solid var(--line); border-radius: 8px; margin: 0 0 10px; padding: 8px 12px 10px; }
fieldset.leaf.invalid { border-color: var(--bad); }
fieldset.leaf legend { font-weight: 600; padding: 0 4px; }
.leaf-fields { display: flex; flex-wrap: wrap; gap: 10px; align-items: flex-end; }
.leaf-fields input { width: 11em; }
.leaf-error { margin: 8px 0 0; padding: 4px 8px; }
.leaf-error p { margin: 2px 0; }
.add-condition { display: flex; flex-wrap: wrap; gap: 8px; align-items: center; }
.add-condition .field.inline { margin: 0; }
.rule-json .code { display: flex; border: 1px solid #8c959f; border-radius: 6px; overflow-x: auto; }
.rule-json .gutter { margin: 0; padding: 7px 6px; background: var(--panel); color: var(--muted); text-align: right;
  font: 13px/1.4 ui-monospace, SFMono-Regular, Menlo, monospace; user-select: none; }
.rule-json .gutter .bad { color: #fff; background: var(--bad); display: inline-block; width: 100%; }
.rule-json textarea { border: 0; border-radius: 0; resize: none; overflow: hidden; line-height: 1.4; padding: 7px 8px;
  white-space: pre; min-width: 16em; }
.json-errors { list-style: none; }
.preview { margin: 12px 0; }
.preview h2 { margin-top: 0; }
.preview p { margin: 4px 0; }
.definition .check { display: flex; align-items: center; gap: 6px; }
.form-actions { margin-top: 16px; }
.confirm { border: 1px solid var(--bad); border-radius: 8px; padding: 8px 12px; margin-bottom: 12px; background: #fff8f8; }
.why { padding: 4px 0; }
.why-tree, .why-tree ul { list-style: none; padding-left: 18px; margin: 4px 0; }
.why-tree li { margin: 3px 0; }
`;

/**
 * Adds the audience pages' styles to the document (once).
 *
 * @example
 * audienceStyles();
 */
export function audienceStyles() {
  if (document.getElementById('cairn-audience-styles')) return;
  const style = document.createElement('style');
  style.id = 'cairn-audience-styles';
  style.textContent = CSS;
  document.head.append(style);
}
