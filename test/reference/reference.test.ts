// The reference model (test/reference/) checked against the real kernel's answers:
//   - the expectations of the bundled scenarios (recorded from Linux 6.18.44), as far as they use
//     what the reference models (private anonymous memory, with or without swap; hugetlb 2 MiB and
//     1 GiB, private and shared; shmem: shared-anon, memfd-private, memfd-shared; anonymous THP (no
//     MADV_COLLAPSE outside hugetlb); no file THP or disk files);
//   - the cases in kernel-cases/ (recorded from 6.18.44 with `pagemap-scan record`), each the
//     smallest program showing a rule the engine missed; and the engine on them, against the
//     known-bug list (a case that starts passing on the engine must leave that list);
//   - what the kernel does where the harness cannot record an answer (a step that hangs);
//   - with PAGEMAP_REFERENCE_KERNEL_RUNS=N, N random programs replayed on this machine's kernel
//     (root and a C compiler needed) and compared step by step with the reference.

import * as fs from 'node:fs';
import * as path from 'node:path';
import fc from 'fast-check';
import { testScenario } from '../../src/cli/test';
import { EnvironmentError } from '../../src/errors';
import { loadScenarioFile, parseScenario } from '../../src/scenario';
import { checkExpectation } from '../../src/scenario/expect';
import { caseArb, caseProgram } from './arbitraries';
import { referenceRun } from './index';
import { compareWithKernel } from './kernel-diff';
import { KNOWN_BUGS, type KnownBugEntry } from './known-bugs';

const BUGS: [string, KnownBugEntry][] = Object.entries(KNOWN_BUGS as Record<string, KnownBugEntry>);
import { programToYaml } from './yaml';

/** The reference's mismatches with a scenario's expect blocks, up to where it stops modelling. */
function referenceMismatches(file: string): { mismatches: string[]; stoppedAt?: string } {
  const program = loadScenarioFile(file);
  const run = referenceRun(program);
  const byStep = new Map(run.results.map((r) => [r.step, r]));
  const mismatches: string[] = [];
  for (const step of program.steps) {
    if (!step.expect) continue;
    if (run.stopped && step.index >= run.stopped.step && run.stopped.reason !== 'failed') {
      return { mismatches, stoppedAt: `step ${step.index}: ${run.stopped.reason} (${run.stopped.message})` };
    }
    for (const m of checkExpectation(step, step.expect, byStep.get(step.index))) {
      mismatches.push(`step ${step.index} ${m.field}: expected ${m.expected}, got ${m.got}`);
    }
  }
  return { mismatches };
}

const scenariosDir = path.join(__dirname, '..', '..', 'scenarios');
const bundled = fs.readdirSync(scenariosDir).filter((f) => f.endsWith('.yaml')).sort();

describe('the reference meets the bundled scenarios (recorded from 6.18.44)', () => {
  test.each(bundled)('%s', (file) => {
    expect(referenceMismatches(path.join(scenariosDir, file)).mismatches).toEqual([]);
  });

  test('and models enough of them to matter', () => {
    const full = bundled.filter((f) => !referenceMismatches(path.join(scenariosDir, f)).stoppedAt);
    expect(full.length).toBeGreaterThanOrEqual(45);
  });
});

const casesDir = path.join(__dirname, 'kernel-cases');
const cases = fs.readdirSync(casesDir).filter((f) => f.endsWith('.yaml')).sort();

describe('kernel-cases/ (recorded from 6.18.44)', () => {
  test.each(cases)('the reference meets %s entirely', (file) => {
    const r = referenceMismatches(path.join(casesDir, file));
    expect(r).toEqual({ mismatches: [] });
  });

  const knownScenarios = new Map<string, string>(
    BUGS.flatMap(([name, b]) => b.scenarios.map((f): [string, string] => [f, name])),
  );
  test.each(cases)('the engine on %s: passes, or fails as a listed known bug', (file) => {
    const failures = testScenario(path.join(casesDir, file)).filter((t) => t.error || t.mismatches.length);
    const bug = knownScenarios.get(file);
    if (bug) {
      if (failures.length === 0) {
        throw new Error(`the engine now passes ${file}: remove '${bug}' from test/reference/known-bugs.ts`);
      }
    } else {
      expect(failures).toEqual([]);
    }
  });

  test('every known bug with a scenario has it here', () => {
    for (const [, b] of BUGS) for (const f of b.scenarios) expect(cases).toContain(f);
  });
});

/** A scenario given inline. */
const scenario = (text: string) => parseScenario(text, 'inline.yaml');

describe('what the kernel does where the harness records no answer', () => {
  // Observed on 6.18.44 with runOnKernel(): each of these steps blocks until a userfaultfd reader
  // takes the fault or event, so the harness reports a hang there.
  test.each([
    [
      'a write to a page of a VMA still registered MISSING (re-registering a subset is a no-op)',
      `steps:
  - mmap: {addr: 0x100000000000, size: 16p, kind: anon, name: a}
  - uffd_open: {}
  - uffd_register: {addr: a, size: 16p, mode: [MISSING, WP]}
  - uffd_register: {addr: a, size: 16p, mode: [WP]}
  - write: {addr: a, size: 1}`,
      5,
    ],
    [
      'MADV_DONTNEED on a VMA registered with a context that has UFFD_FEATURE_EVENT_REMOVE',
      `steps:
  - mmap: {addr: 0x100000000000, size: 16p, kind: anon, name: a}
  - write: {addr: a, size: 16p}
  - uffd_open: {features: [WP_ASYNC, EVENT_REMOVE]}
  - uffd_register: {addr: a, size: 16p, mode: [WP]}
  - madvise: {addr: a, size: 1p, advice: dontneed}`,
      5,
    ],
    [
      'munmap of a VMA registered with a context that has UFFD_FEATURE_EVENT_UNMAP',
      `steps:
  - mmap: {addr: 0x100000000000, size: 16p, kind: anon, name: a}
  - uffd_open: {features: [WP_ASYNC, EVENT_UNMAP]}
  - uffd_register: {addr: a, size: 16p, mode: [WP]}
  - munmap: {addr: a, size: 16p}`,
      4,
    ],
    [
      'a write to a write-protected page with a synchronous WP context',
      `steps:
  - mmap: {addr: 0x100000000000, size: 16p, kind: anon, name: a}
  - write: {addr: a, size: 1}
  - uffd_open: {features: 0}
  - uffd_register: {addr: a, size: 16p, mode: [WP]}
  - uffd_writeprotect: {addr: a, size: 16p, wp: true}
  - write: {addr: a, size: 1}`,
      6,
    ],
    [
      // From the source (hugetlb_wp(): "never handle CoW for uffd-wp protected pages"), not recorded.
      'a write to a hugetlb page whose uffd-wp bit outlived the WP registration (it loops for ever)',
      `steps:
  - mmap: {addr: 0x100000000000, size: 2M, kind: hugetlb, name: h}
  - uffd_open: {}
  - uffd_register: {addr: h, size: 2M, mode: [WP]}
  - uffd_writeprotect: {addr: h, size: 2M, wp: true}
  - read: {addr: h, size: 1}
  - uffd_register: {addr: h, size: 2M, mode: [MISSING]}
  - write: {addr: h, size: 1}`,
      7,
    ],
  ])('%s', (_, text, step) => {
    const run = referenceRun(scenario(text));
    expect(run.stopped).toMatchObject({ step, reason: 'userfault' });
  });

  test('clear_refs above INT_MAX is ERANGE (an errno the scenario format cannot name)', () => {
    const run = referenceRun(
      scenario(`steps:
  - clear_refs: {value: 4}
  - clear_refs: {value: 6}
    may_fail: true
  - clear_refs: {value: 2147483648}
    may_fail: true`),
    );
    expect(run.results.map((r) => r.errno)).toEqual([null, 'EINVAL', 'ERANGE']);
  });
});

const KERNEL_RUNS = Number(process.env.PAGEMAP_REFERENCE_KERNEL_RUNS ?? 0);

(KERNEL_RUNS > 0 ? describe : describe.skip)(`the reference against this machine's kernel (${KERNEL_RUNS} random programs)`, () => {
  test('every reproduced step agrees', async () => {
    const seed = Number(process.env.PAGEMAP_PROPERTY_SEED ?? 0x5ca1ab1e);
    let compared = 0;
    const skipped = new Map<string, number>();
    // The harness does not refuse a system it does not match: leave out the cases whose system
    // (swap, THP mode, a hugetlb pool) this machine is not (only read here, never changed).
    const read = (f: string): string => {
      try {
        return fs.readFileSync(f, 'utf8');
      } catch {
        return '';
      }
    };
    const machineSwap = read('/proc/swaps').trim().split('\n').length > 1;
    const machineThp = /\[(\w+)\]/.exec(read('/sys/kernel/mm/transparent_hugepage/enabled'))?.[1] ?? 'madvise';
    const machineHuge = Number(read('/proc/sys/vm/nr_hugepages') || 0) > 0;
    for (const c of fc.sample(caseArb, { numRuns: KERNEL_RUNS, seed })) {
      const program = caseProgram(c);
      const why =
        program.system.swap !== machineSwap ? 'system.swap' :
        program.system.thp !== machineThp ? 'system.thp' :
        !machineHuge && program.steps.some((st) => st.op.op === 'mmap' && st.op.kind.startsWith('hugetlb')) ? 'hugetlb pool' : undefined;
      if (why) {
        skipped.set(why, (skipped.get(why) ?? 0) + 1);
        continue;
      }
      let result;
      try {
        result = await compareWithKernel(program);
      } catch (e) {
        // A case this machine cannot reproduce (system.swap, system.thp, the pool): the next one.
        if (e instanceof EnvironmentError) {
          skipped.set(e.message, (skipped.get(e.message) ?? 0) + 1);
          continue;
        }
        throw e;
      }
      if (result.difference) throw new Error(`${result.difference}\n\n${programToYaml(program)}`);
      compared += result.compared;
    }
    if (skipped.size) console.warn('skipped (the machine differs):', [...skipped]);
    expect(compared).toBeGreaterThan(KERNEL_RUNS * 2);
  }, 3_600_000);
});
