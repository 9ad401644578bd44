// The login page's rule for `next` (safeNext in web/static/login.js) over the table the
// server's own test reads (tests/data/next.txt, for cs_auth_next_ok), so the two rules
// stay one; and the page itself, loaded with each value in its query, carries only the
// values it should into the form. No browser: a few lines stand in for the page's DOM.
// Exits non-zero on failure.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';

const here = (rel) => new URL(rel, import.meta.url);
const NEXT_MAX = 1024; // CS_NEXT_MAX in src/http/auth.h

// [verdict, value] for each line that is not a comment ("refuse" alone: the empty value).
const table = readFileSync(here('../data/next.txt'), 'utf8')
  .split('\n')
  .filter((line) => line && !line.startsWith('#'))
  .map((line) => {
    const verdict = line.slice(0, 6);
    assert.ok(['follow', 'refuse'].includes(verdict) && [undefined, ' '].includes(line[6]),
      `a malformed line in next.txt: ${line}`);
    return [verdict, line.slice(7)];
  });
assert.ok(table.length >= 40, `only ${table.length} values in next.txt`);

// The page at /login?<search>: its form's fields, after its script ran. Each load is a
// new instance of the module (its URL differs).
let loads = 0;
async function loadPage(search) {
  const fields = {};
  globalThis.location = { search };
  globalThis.document = {
    getElementById: (id) => (fields[id] ??= { value: '', hidden: true, focus() {} }),
  };
  const mod = await import(`${here('../../web/static/login.js')}?load=${++loads}`);
  return { fields, safeNext: mod.safeNext };
}

const { safeNext } = await loadPage('');
const wrong = [];
for (const [verdict, value] of table) {
  // as the page's URLSearchParams (and the server's form parser) decode it
  const decoded = new URLSearchParams(`next=${value}`).get('next');
  const followed = safeNext(decoded);
  if ((followed !== null) !== (verdict === 'follow') || (followed !== null && followed !== decoded))
    wrong.push(`safeNext: next=${value} ${followed === null ? 'refused' : 'accepted'}`);
  const page = await loadPage(`?next=${value}`);
  const carried = page.fields.next?.value ?? '';
  if (carried !== (verdict === 'follow' ? decoded : ''))
    wrong.push(`the page: next=${value} put ${JSON.stringify(carried)} in the form`);
}
assert.deepEqual(wrong, []);

// The longest value followed, and one more.
const longest = '/' + 'a'.repeat(NEXT_MAX - 2);
assert.equal(safeNext(longest), longest);
assert.equal(safeNext(longest + 'a'), null);
assert.equal(safeNext(null), null);
console.log(`next: ${table.length} values, all as the server rules`);
