// Concatenated JSON values with no delimiter between them: what OVSDB's JSON-RPC sends and what a
// KEP-5304 DRA metadata file holds. One scanner for both.

/**
 * Finds the complete top-level JSON objects and arrays in text. `values` are their texts, in
 * order; `consumed` is where the last complete one ends, so that a caller reading a stream keeps
 * text.slice(consumed) for the next chunk. Text between values (white space) is skipped.
 */
export function splitJsonValues(text: string): { values: string[]; consumed: number } {
  const values: string[] = [];
  let depth = 0;
  let start = -1;
  let consumed = 0;
  let inString = false;
  let escaped = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (escaped) escaped = false;
      else if (c === '\\') escaped = true;
      else if (c === '"') inString = false;
      continue;
    }
    if (c === '"') inString = true;
    else if (c === '{' || c === '[') {
      if (depth === 0) start = i;
      depth++;
    } else if (c === '}' || c === ']') {
      depth--;
      if (depth === 0 && start >= 0) {
        values.push(text.slice(start, i + 1));
        consumed = i + 1;
        start = -1;
      }
    }
  }
  return { values, consumed };
}
