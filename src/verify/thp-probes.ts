// THP allocation is not deterministic: a fault may fall back to small pages when no huge page can
// be had, and khugepaged may collapse a block in the background. So that such a run is reported
// as "not reproducible" rather than as a difference, verify follows every step that can create a
// THP with a probe: a side-effect-free scan of the touched 2 MiB blocks for PAGE_IS_HUGE, run on
// both sides. Where the probes disagree, the kernel's THPs were not the ones the rules predict.

import { PAGE_IS_HUGE, PMD_SIZE, TASK_SIZE_MAX } from '../uapi';
import { stepToJson } from '../scenario/json';
import { scanArg, VEC_CAPACITY, type Op, type Program, type Step, type StepResult } from '../scenario/program';

/** The augmented program, and for each of its step indexes the original step and whether a probe. */
export interface Probed {
  program: Program;
  origin: Map<number, { step: number; probe: boolean }>;
}

/** The range whose 2 MiB blocks a step may turn into THPs, or undefined. */
function thpRange(op: Op): { start: bigint; end: bigint } | undefined {
  const touches =
    op.op === 'read' ||
    op.op === 'write' ||
    (op.op === 'madvise' && (op.advice === 'collapse' || op.advice === 'populate-read' || op.advice === 'populate-write'));
  if (!touches) return undefined;
  const block = BigInt(PMD_SIZE);
  const start = (op.addr / block) * block;
  const end = ((op.addr + op.size + block - 1n) / block) * block;
  if (end > BigInt(TASK_SIZE_MAX) || end <= start) return undefined;
  return { start, end };
}

/** Is THP possible at all in this scenario? Only then are probes worth adding. */
function mayHaveThp(program: Program): boolean {
  return (
    program.system.thp === 'always' ||
    program.steps.some((s) => s.op.op === 'madvise' && (s.op.advice === 'hugepage' || s.op.advice === 'collapse'))
  );
}

export function withThpProbes(program: Program): Probed {
  const origin = new Map<number, { step: number; probe: boolean }>();
  if (!mayHaveThp(program)) {
    for (const s of program.steps) origin.set(s.index, { step: s.index, probe: false });
    return { program, origin };
  }
  const steps: Step[] = [];
  for (const s of program.steps) {
    steps.push({ ...s, index: steps.length + 1 });
    origin.set(steps.length, { step: s.index, probe: false });
    const range = thpRange(s.op);
    if (!range) continue;
    const probe: Op = {
      op: 'pagemap_scan',
      arg: scanArg({ ...range, category_mask: BigInt(PAGE_IS_HUGE), return_mask: BigInt(PAGE_IS_HUGE), vec_len: VEC_CAPACITY }),
    };
    steps.push({ index: steps.length + 1, op: probe, mayFail: true, where: s.where });
    origin.set(steps.length, { step: s.index, probe: true });
  }
  return { program: { ...program, steps }, origin };
}

/** Results of the augmented program back in the original's numbering, without the probes. */
export function unprobe<T extends { results: StepResult[] }>(run: T, probed: Probed): T {
  const results = run.results
    .filter((r) => !probed.origin.get(r.step)?.probe)
    .map((r) => ({ ...r, step: probed.origin.get(r.step)?.step ?? r.step }));
  return { ...run, results };
}

/**
 * The first original step after which the two sides' THPs differ, with what differed; undefined
 * when every probe agrees.
 */
export function thpDivergence(
  probed: Probed,
  kernel: StepResult[],
  emulator: StepResult[],
): { step: number; detail: string } | undefined {
  const k = new Map(kernel.map((r) => [r.step, r]));
  for (const e of emulator) {
    const o = probed.origin.get(e.step);
    if (!o?.probe) continue;
    const kr = k.get(e.step);
    if (!kr) return undefined; // the kernel stopped before: compareRuns says so
    const pages = (r: StepResult) => (r.regions ?? []).reduce((n, g) => n + (g.end - g.start), 0n) / 4096n;
    if (JSON.stringify(stepToJson(kr).regions) !== JSON.stringify(stepToJson(e).regions)) {
      const [kp, ep] = [pages(kr), pages(e)];
      const detail =
        kp < ep
          ? `the kernel mapped fewer huge pages than predicted (${kp} vs ${ep} pages): a THP allocation fell back to small pages`
          : `the kernel mapped other huge pages than predicted (${kp} vs ${ep} pages): khugepaged or a failed allocation`;
      return { step: o.step, detail };
    }
  }
  return undefined;
}
