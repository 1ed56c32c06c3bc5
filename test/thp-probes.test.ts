// verify's THP probes: a THP allocation that fell back to small pages on the kernel is reported
// as "not reproducible" at the step that faulted, not as a difference.

import { simulate } from '../src/simulate';
import { thpDivergence, unprobe, withThpProbes } from '../src/verify/thp-probes';
import { B, P, mmap, program, scan, write } from './support/program';
import type { Program } from '../src/scenario/program';

const M2 = 2n * 1024n * 1024n;

function thpProgram(): Program {
  return program([
    mmap(B, 2n * M2),
    { op: 'madvise', addr: B, size: 2n * M2, advice: 'hugepage' },
    write(B, P),
    write(B + M2 + 5n * P, P),
    scan({ end: B + 2n * M2 }),
  ]);
}

test('a probe follows each step that may create a THP, and is taken out again', () => {
  const probed = withThpProbes(thpProgram());
  expect(probed.program.steps.map((s) => s.op.op)).toEqual(['mmap', 'madvise', 'write', 'pagemap_scan', 'write', 'pagemap_scan', 'pagemap_scan']);
  const run = unprobe(simulate(probed.program), probed);
  expect(run.results.map((r) => [r.step, r.op])).toEqual([
    [1, 'mmap'],
    [2, 'madvise'],
    [3, 'write'],
    [4, 'write'],
    [5, 'pagemap_scan'],
  ]);
  // The probes change nothing: the real scan answers as without them.
  expect(run.results[4]).toEqual(simulate(thpProgram()).results[4]);
});

test('no probes where no THP can appear', () => {
  const p = program([mmap(B, M2), write(B, P)]);
  expect(withThpProbes(p).program.steps).toHaveLength(2);
});

test('a fallback to small pages is found at the faulting step', () => {
  const probed = withThpProbes(thpProgram());
  const predicted = simulate(probed.program).results;
  // What the kernel does when no huge page can be allocated: small pages, as with THP off.
  const fellBack = simulate({ ...probed.program, system: { ...probed.program.system, thp: 'never' } }).results;
  expect(thpDivergence(probed, predicted, predicted)).toBeUndefined();
  const d = thpDivergence(probed, fellBack, predicted);
  expect(d?.step).toBe(3);
  expect(d?.detail).toMatch(/fell back to small pages/);
});
