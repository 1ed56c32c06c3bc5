// Every bundled scenario, replayed on this machine's kernel, agrees with the emulator step by
// step. Scenarios that need swap or hugetlb pages get them for the run (root; put back after).
// When the kernel cannot run them (no PAGEMAP_SCAN, no userfaultfd, no compiler, not root), one
// loud line says what was skipped and why.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { EnvironmentError } from '../src/errors';
import { loadScenarioFile, type Program } from '../src/scenario';
import { hugetlbPagesNeeded, withHugetlbPages, withSwapFile } from '../src/kernel';
import { summarize, verifyProgram, type Verification } from '../src/verify';

const dir = path.join(__dirname, '..', 'scenarios');
const files = fs.readdirSync(dir).filter((f) => f.endsWith('.yaml')).sort();

let unavailable: string | undefined;
const results = new Map<string, Verification>();

beforeAll(async () => {
  const programs = files.map((f) => loadScenarioFile(path.join(dir, f)));
  // A scenario that sizes the hugetlb pool itself gets exactly that pool; the others share one
  // big enough for all of them. Swap exists or not as each scenario says.
  const explicit = programs.filter((p) => p.system.hugetlbPages);
  const shared = programs.filter((p) => !p.system.hugetlbPages);
  const needed = shared.map(hugetlbPagesNeeded);
  const pool = { '2M': Math.max(0, ...needed.map((n) => n['2M'])), '1G': Math.max(0, ...needed.map((n) => n['1G'])) };
  const verifyAll = async (list: Program[]) => {
    for (const p of list) results.set(path.basename(p.file), await verifyProgram(p));
  };
  const withPool = (pages: { '2M': number; '1G': number }, fn: () => Promise<void>) =>
    pages['2M'] || pages['1G'] ? withHugetlbPages(pages, fn) : fn();
  const withSwap = (swap: boolean, fn: () => Promise<void>) => (swap ? withSwapFile(64 * 1024 * 1024, fn) : fn());
  try {
    for (const swap of [false, true]) {
      await withSwap(swap, () => withPool(pool, () => verifyAll(shared.filter((p) => p.system.swap === swap))));
      for (const p of explicit.filter((q) => q.system.swap === swap)) {
        await withSwap(swap, () => withPool(hugetlbPagesNeeded(p), () => verifyAll([p])));
      }
    }
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
