// Every bundled scenario, replayed on this machine's kernel, agrees with the emulator step by
// step. Scenarios that need swap or hugetlb pages get them for the run (root; put back after).
// When the kernel cannot run them (no PAGEMAP_SCAN, no userfaultfd, no compiler, not root), one
// loud line says what was skipped and why.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { EnvironmentError } from '../src/errors';
import { loadScenarioFile } from '../src/scenario';
import { hugetlbPagesNeeded, withHugetlbPages, withSwapFile } from '../src/kernel';
import { summarize, verifyProgram, type Verification } from '../src/verify';

const dir = path.join(__dirname, '..', 'scenarios');
const files = fs.readdirSync(dir).filter((f) => f.endsWith('.yaml')).sort();

let unavailable: string | undefined;
const results = new Map<string, Verification>();

beforeAll(async () => {
  const programs = files.map((f) => loadScenarioFile(path.join(dir, f)));
  const needed = programs.map(hugetlbPagesNeeded);
  const pages = { '2M': Math.max(0, ...needed.map((n) => n['2M'])), '1G': Math.max(0, ...needed.map((n) => n['1G'])) };
  const verifyAll = async (swap: boolean) => {
    for (const p of programs.filter((q) => q.system.swap === swap)) results.set(path.basename(p.file), await verifyProgram(p));
  };
  const withPool = (fn: () => Promise<void>) => (pages['2M'] || pages['1G'] ? withHugetlbPages(pages, fn) : fn());
  try {
    // A scenario fixes whether a swap device exists: those without swap run first.
    await withPool(() => verifyAll(false));
    await withSwapFile(64 * 1024 * 1024, () => withPool(() => verifyAll(true)));
  } catch (e) {
    if (!(e instanceof EnvironmentError)) throw e;
    unavailable = e.message;
    console.warn(`SKIPPED: live-kernel verification of ${files.length} scenarios: ${e.message}`);
  }
}, 600_000);

describe.each(files)('%s', (file) => {
  test('agrees with the live kernel on every step', () => {
    if (unavailable) return;
    const v = results.get(file)!;
    const notAgreeing = v.steps.filter((s) => s.status !== 'agree');
    expect(notAgreeing.map((s) => ({ step: s.step, status: s.status, fields: s.fields, reason: s.reason }))).toEqual([]);
    expect(summarize(v.steps).agree).toBe(v.program.steps.length);
  });
});
