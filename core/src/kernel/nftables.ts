/** Splits `nft list ruleset` into tables (`family name` → listing, counters zeroed so that traffic is no drift). */
export function splitRuleset(text: string): Map<string, string> {
  const out = new Map<string, string>();
  let key: string | undefined;
  let body: string[] = [];
  for (const line of text.split('\n')) {
    const start = /^table (\S+) (\S+) \{$/.exec(line);
    if (start) {
      key = `${start[1]} ${start[2]}`;
      body = [];
    } else if (line === '}' && key !== undefined) {
      out.set(key, body.join('\n').replace(/counter packets \d+ bytes \d+/g, 'counter').replace(/packets \d+ bytes \d+/g, ''));
      key = undefined;
    } else if (key !== undefined) body.push(line);
  }
  return out;
}
