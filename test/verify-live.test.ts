// Every bundled scenario, replayed on this machine's kernel, agrees with the emulator step by
// step. Scenarios that need swap, hugetlb pages, another THP mode or another read_ahead_kb get
// them for the run (root; put back after).
// When the kernel cannot run them (no PAGEMAP_SCAN, no userfaultfd, no compiler, not root), one
// loud line says what was skipped and why.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { EnvironmentError } from '../src/errors';
import { loadScenarioFile, type Program } from '../src/scenario';
import { hugetlbPagesNeeded, withHugetlbPages, withReadAheadKb, withSwapFile, withThpMode } from '../src/kernel';
import { DEFAULT_READ_AHEAD_KB } from '../src/scenario/program';
import { runningKernel, summarize, verifyProgram, type Verification } from '../src/verify';

const dir = path.join(__dirname, '..', 'scenarios');
const files = fs.readdirSync(dir).filter((f) => f.endsWith('.yaml')).sort();

let unavailable: string | undefined;
const results = new Map<string, Verification>();

beforeAll(async () => {
  const programs = files.map((f) => loadScenarioFile(path.join(dir, f)));
  // The machine is set up as each scenario's `system` says: swap or not, the THP mode, and the
  // hugetlb pool (exactly the size a scenario gives, else one big enough for all of them).
  const needed = programs.filter((p) => !p.system.hugetlbPages).map(hugetlbPagesNeeded);
  const sharedPool = { '2M': Math.max(0, ...needed.map((n) => n['2M'])), '1G': Math.max(0, ...needed.map((n) => n['1G'])) };
  const groups = new Map<string, Program[]>();
  for (const p of programs) {
    const key = JSON.stringify([p.system.swap, p.system.thp, p.system.readAheadKb, p.system.hugetlbPages ? p.file : '']);
    groups.set(key, [...(groups.get(key) ?? []), p]);
  }
  try {
    for (const list of groups.values()) {
      const { swap, thp, hugetlbPages, readAheadKb } = list[0].system;
      const pool = hugetlbPages ? hugetlbPagesNeeded(list[0]) : sharedPool;
      let run = async () => {
        for (const p of list) results.set(path.basename(p.file), await verifyProgram(p));
      };
      const verifyGroup = run;
      const withPool = () => (pool['2M'] || pool['1G'] ? withHugetlbPages(pool, verifyGroup) : verifyGroup());
      run = swap ? () => withSwapFile(64 * 1024 * 1024, withPool) : withPool;
      const withSwap = run;
      await withReadAheadKb(readAheadKb ?? DEFAULT_READ_AHEAD_KB, () => withThpMode(thp, withSwap));
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
    // Scenarios for other kernels' semantics (profiles), or that the helper cannot build (PFNMAP),
    // are checked against the source in test/scenarios.test.ts; here they must say why they skip.
    if (v.program.kernel !== runningKernel() || v.program.steps.some((s) => s.op.op === 'mmap' && s.op.kind === 'pfnmap')) {
      expect(v.steps.some((s) => s.status === 'skipped' && s.side === 'kernel' && s.reason)).toBe(true);
      expect(v.steps.filter((s) => s.status === 'differ')).toEqual([]);
      return;
    }
    const notAgreeing = v.steps.filter((s) => s.status !== 'agree');
    expect(notAgreeing.map((s) => ({ step: s.step, status: s.status, fields: s.fields, reason: s.reason }))).toEqual([]);
    // A step that never returns (blocked on userfaultfd, or a kernel loop) ends the scenario on
    // both sides: the steps after it run on neither.
    const stop = v.steps.find((s) => s.kernel?.userfault || s.kernel?.hang);
    expect(summarize(v.steps).agree).toBe(stop ? stop.step : v.program.steps.length);
  });
});
