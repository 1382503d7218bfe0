// Reads a Mermaid diagram on stdin and parses it with Mermaid's own parser (a DOM from jsdom):
// prints {"ok": true, "type": ...} or {"ok": false, "error": ...} and exits 0 or 1.
// With --json, stdin is a JSON array of diagrams and the output an array of those results.
import fs from 'fs';
import { JSDOM } from 'jsdom';

const dom = new JSDOM('<!doctype html><html><body></body></html>', { pretendToBeVisual: true });
globalThis.window = dom.window;
globalThis.document = dom.window.document;
for (const k of ['Element', 'HTMLElement', 'SVGElement', 'DOMParser', 'getComputedStyle',
                 'MutationObserver']) {
  if (!(k in globalThis)) globalThis[k] = dom.window[k];
}
const { default: mermaid } = await import('mermaid');
mermaid.initialize({ startOnLoad: false });
async function parse(text) {
  try {
    const result = await mermaid.parse(text);
    return { ok: true, type: result.diagramType };
  } catch (e) {
    process.exitCode = 1;
    return { ok: false, error: String(e.message || e) };
  }
}
const input = fs.readFileSync(0, 'utf8');
if (process.argv.includes('--json')) {
  const results = [];
  for (const text of JSON.parse(input)) results.push(await parse(text));
  console.log(JSON.stringify(results));
} else {
  console.log(JSON.stringify(await parse(input)));
}
