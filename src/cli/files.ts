// Turning FILE|DIR arguments into scenario files: a directory means its *.yaml / *.yml files,
// recursively, in name order.

import * as fs from 'node:fs';
import * as path from 'node:path';

export function scenarioFiles(args: string[]): string[] {
  const out: string[] = [];
  for (const arg of args) {
    let st: fs.Stats | undefined;
    try {
      st = fs.statSync(arg);
    } catch {
      st = undefined;
    }
    if (st?.isDirectory()) out.push(...walk(arg));
    else out.push(arg); // the loader reports missing or unreadable files with their name
  }
  return out;
}

function walk(dir: string): string[] {
  const out: string[] = [];
  for (const entry of fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...walk(p));
    else if (/\.ya?ml$/.test(entry.name)) out.push(p);
  }
  return out;
}
