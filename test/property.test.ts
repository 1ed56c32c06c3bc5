// Property tests: the engine (simulate) against the reference model (test/reference/) on random
// programs, with fast-check.
//
// Every generated program (test/reference/arbitraries.ts) makes anonymous (sometimes whole 2 MiB
// blocks with MADV_HUGEPAGE: THP), shmem (shared-anon, memfd-private, memfd-shared) and hugetlb
// mappings (2 MiB and 1 GiB, private and shared, from a pool of a few pages), on a system with or
// without swap, THP madvise (mostly), always or never, maybe a userfaultfd, then random touches,
// madvise, munmap, mprotect, uffd operations and
// scans with random arguments, and ends with five probe scans. Required for each:
//   - engine == reference: every step's ret, errno, walk_end and regions, where and why the run
//     stopped, and the page-table state (dumpPages) of the window afterwards, outside hugetlb
//     VMAs (their entries are compared through the scans);
//   - every scan result is well formed (sorted, disjoint, aligned regions inside the range, within
//     vec_len and max_pages, walk_end aligned inside [start, rounded end], no equal neighbours);
//   - [a,b) then [b,c) reports what [a,c) reports (no WP, no limits), up to the split at b;
//   - a WP_MATCHING scan repeated at once reports nothing WRITTEN the second time.
//
// Environment:
//   PAGEMAP_PROPERTY_RUNS=100000      number of programs (default 10000)
//   PAGEMAP_PROPERTY_SEED=123|random  fast-check seed (default fixed, so CI is reproducible)
//   PAGEMAP_PROPERTY_STRICT=1         known engine bugs (test/reference/known-bugs.ts) fail too
//   PAGEMAP_PROPERTY_VERBOSE=1        print coverage and known-bug counts
// A failure prints the seed, the shrunk counter-example as a scenario (also written to a file
// that `pagemap-scan run` takes) and what differed.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import fc from 'fast-check';
import { BIG_VEC, caseArb, caseHasThp, caseProgram, WINDOW_END, WINDOW_START, type Case } from './reference/arbitraries';
import { coalesce, compareRuns, scanInvariants, showResult } from './reference/compare';
import { programToYaml, roundTrip } from './reference/yaml';
import type { PmScanArg } from '../src/uapi';
import type { Program, StepResult } from '../src/scenario/program';

const RUNS = Number(process.env.PAGEMAP_PROPERTY_RUNS ?? 10_000);
const SEED_ENV = process.env.PAGEMAP_PROPERTY_SEED;
const SEED = SEED_ENV === 'random' ? Date.now() ^ (Math.random() * 0x7fffffff) : Number(SEED_ENV ?? 0x5ca1ab1e);
const VERBOSE = process.env.PAGEMAP_PROPERTY_VERBOSE === '1';

const WRITTEN = 2;
const SWAPPED = 16;
const HUGE = 64;
const PRESENT = 8;
const PFNZERO = 32;

/** What the runs saw, so that a generator that stopped reaching things is noticed. */
const coverage: Record<string, number> = {};
const count = (key: string): void => {
  coverage[key] = (coverage[key] ?? 0) + 1;
};

const argOf = (program: Program, r: StepResult): PmScanArg => {
  const op = program.steps[r.step - 1].op;
  if (op.op !== 'pagemap_scan') throw new Error('not a scan');
  return op.arg;
};

/** The checks of one case; throws with a description of the first violation. */
function checkCase(c: Case): void {
  const program = caseProgram(c);
  const cmp = compareRuns(program, [WINDOW_START, WINDOW_END]);
  if (cmp.difference) throw new Error(`engine and reference differ at ${cmp.difference}`);
  for (const x of cmp.explained) count(`known bug: ${x.bug}`);
  if (cmp.truncated) count('truncated (engine: not modelled)');

  const results = cmp.engine.results;
  const thp = caseHasThp(c);
  if (thp) count('THP case');
  for (const r of results) {
    if (r.op !== 'pagemap_scan') continue;
    const arg = argOf(program, r);
    // A THP back-out (WP_MATCHING over part of one) re-emits into an emptied slot (spec §14 Q10).
    const bad = scanInvariants(arg, r, thp);
    if (bad.length) throw new Error(`step ${r.step}: ${bad.join('; ')}\n  ${showResult(r)}`);
    count(r.errno ? `scan ${r.errno}` : 'scan ok');
    if ((r.regions ?? []).some((g) => g.categories & HUGE)) count('scan reports HUGE (hugetlb)');
    if ((r.regions ?? []).some((g) => g.categories & HUGE && g.categories & PFNZERO)) count('scan reports the huge zero page');
    if (thp && (r.regions ?? []).some((g) => g.categories & HUGE && g.categories & PRESENT && !(g.categories & PFNZERO))) count('scan reports HUGE|PRESENT in a THP case');
    if (program.system.swap && (r.regions ?? []).some((g) => g.categories & SWAPPED && !(g.categories & HUGE))) count('scan reports SWAPPED with swap on');
    if ((r.regions ?? []).length > 512) count('scan > 512 regions');
    if (!r.errno && arg.vec_len === 0n && arg.flags & 1n) count('scan exclusive WP');
    if (!r.errno && r.walk_end !== null && r.walk_end !== undefined && r.walk_end < ((arg.end + 4095n) / 4096n) * 4096n) count('scan stopped early');
  }

  // The probes: the last five steps, when the run got there.
  const n = program.steps.length;
  const probe = (k: number): StepResult | undefined => results.find((r) => r.step === n - 4 + k);
  const [ac, ab, bc, wp1, wp2] = [0, 1, 2, 3, 4].map(probe);
  if (ac && ab && bc) {
    count('probes reached');
    if (!ac.errno && !ab.errno && !bc.errno) {
      const whole = coalesce(ac.regions ?? []);
      const split = coalesce([...(ab.regions ?? []), ...(bc.regions ?? [])]);
      if (whole.join(' ') !== split.join(' ')) {
        throw new Error(`[a,c) and [a,b)+[b,c) differ:\n  [a,c):        ${whole.join(' ')}\n  [a,b)+[b,c):  ${split.join(' ')}`);
      }
      if (BigInt((ac.regions ?? []).length) > BIG_VEC) throw new Error('probe overflowed its output array');
      if (ac.regions?.length) count('split probe with regions');
    }
  }
  if (wp1 && wp2 && !wp1.errno && !wp2.errno) {
    const written = (wp2.regions ?? []).filter((g) => g.categories & WRITTEN);
    if (written.length) throw new Error(`a second WP_MATCHING scan still reports WRITTEN: ${showResult(wp2)}`);
    if (wp1.regions?.some((g) => g.categories & WRITTEN)) count('WP probe protected something');
  }
}

function report(details: fc.RunDetails<[Case]>): string {
  const c = details.counterexample![0];
  const program = caseProgram(c);
  let error = details.errorInstance instanceof Error ? details.errorInstance.message : String(details.errorInstance);
  const yaml = programToYaml(program, [
    `property-test counter-example: seed ${details.seed}, path ${details.counterexamplePath}`,
    `rerun: PAGEMAP_PROPERTY_SEED=${details.seed} npx jest test/property.test.ts`,
    ...error.split('\n').map((l) => `  ${l}`),
  ]);
  const file = path.join(os.tmpdir(), `pagemap-scan-counterexample-${details.seed}.yaml`);
  try {
    fs.writeFileSync(file, yaml);
    error += `\n(written to ${file}: pagemap-scan run ${file})`;
  } catch {
    // the message below has it all anyway
  }
  return `property failed after ${details.numRuns} runs (seed ${details.seed}, path ${details.counterexamplePath}, ${details.numShrinks} shrinks)\n${error}\n\n${yaml}`;
}

test(`engine == reference on ${RUNS} random programs, and every scan is well formed (seed ${SEED})`, () => {
  const details = fc.check(
    fc.property(caseArb, (c) => {
      checkCase(c);
    }),
    { numRuns: RUNS, seed: SEED },
  );
  if (VERBOSE) console.log(`seed ${SEED}:`, Object.entries(coverage).sort());
  if (details.failed) throw new Error(report(details));
  // A generator that no longer reaches the interesting states would pass vacuously.
  if (RUNS >= 5000) {
    expect(coverage['probes reached'] ?? 0).toBeGreaterThan(RUNS * 0.6);
    expect(coverage['split probe with regions'] ?? 0).toBeGreaterThan(RUNS * 0.3);
    expect(coverage['WP probe protected something'] ?? 0).toBeGreaterThan(RUNS * 0.1);
    expect(coverage['scan > 512 regions'] ?? 0).toBeGreaterThan(0);
    expect(coverage['scan exclusive WP'] ?? 0).toBeGreaterThan(RUNS * 0.05);
    expect(coverage['scan stopped early'] ?? 0).toBeGreaterThan(RUNS * 0.01);
    expect(coverage['scan EPERM'] ?? 0).toBeGreaterThan(0);
    expect(coverage['scan reports HUGE (hugetlb)'] ?? 0).toBeGreaterThan(RUNS * 0.05);
    expect(coverage['scan reports SWAPPED with swap on'] ?? 0).toBeGreaterThan(RUNS * 0.02);
    expect(coverage['scan reports HUGE|PRESENT in a THP case'] ?? 0).toBeGreaterThan(RUNS * 0.02);
    expect(coverage['scan reports the huge zero page'] ?? 0).toBeGreaterThan(RUNS * 0.01);
  }
});

test('programToYaml round-trips every generated program through parseScenario', () => {
  fc.assert(
    fc.property(caseArb, (c) => {
      roundTrip(caseProgram(c));
    }),
    { numRuns: 300, seed: SEED },
  );
});
