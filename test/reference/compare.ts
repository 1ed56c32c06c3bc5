// Engine (simulate) versus reference (referenceRun) on one Program: the first difference, if
// any, in words. Also the invariants every scan result must satisfy.

import { simulate, type SimulationResult } from '../../src/simulate';
import { dumpPages as engineDump } from '../../src/mm/dump';
import type { PmScanArg } from '../../src/uapi';
import type { Program, StepResult } from '../../src/scenario/program';
import { referenceRun, type RefRun, type StateRun } from './index';
import { RESULT_ONLY, type KnownBug } from './known-bugs';

const hex = (v: bigint | number): string => '0x' + v.toString(16);

export function showResult(r: StepResult | undefined): string {
  if (!r) return '(no result)';
  let s = `${r.op} ret=${r.ret} errno=${r.errno ?? '-'}`;
  if (r.op === 'pagemap_scan') {
    s += ` walk_end=${r.walk_end == null ? 'null' : hex(r.walk_end)}`;
    s += ` regions=[${(r.regions ?? []).map((g) => `${hex(g.start)}-${hex(g.end)}:${g.categories.toString(16)}`).join(' ')}]`;
  }
  return s;
}

function same(a: StepResult | undefined, b: StepResult | undefined): boolean {
  if (!a || !b) return a === b;
  if (a.step !== b.step || a.op !== b.op || a.ret !== b.ret || a.errno !== b.errno || a.walk_end !== b.walk_end) return false;
  const ra = a.regions ?? [];
  const rb = b.regions ?? [];
  if (ra.length !== rb.length || (a.regions === undefined) !== (b.regions === undefined)) return false;
  return ra.every((g, i) => g.start === rb[i].start && g.end === rb[i].end && g.categories === rb[i].categories);
}

function showRuns(runs: StateRun[]): string {
  return runs.map((r) => `[${hex(r.start)},${hex(r.end)}) ${r.state}`).join('\n    ');
}

export interface Comparison {
  engine: SimulationResult;
  ref: RefRun;
  /** The first difference that no known engine bug explains, or undefined. */
  difference?: string;
  /** Whether the comparison could not go to the end (the engine lacks some semantics). */
  truncated: boolean;
  /** Known engine bugs that explained differences (the comparison of state stops at such a difference). */
  explained: { bug: KnownBug; step: number; difference: string }[];
}

/** Set PAGEMAP_PROPERTY_STRICT=1 to report known engine bugs as failures too. */
const STRICT = process.env.PAGEMAP_PROPERTY_STRICT === '1';

/** Run both and compare results step by step, how they stopped, and the state in the window. */
export function compareRuns(program: Program, window: [bigint, bigint]): Comparison {
  const engine = simulate(program);
  const ref = referenceRun(program);
  const out: Comparison = { engine, ref, truncated: false, explained: [] };
  const engineNotModelled = engine.stopped?.notModelled ? engine.stopped.step : undefined;
  // The reference stops too where it does not model something (THP over a hugetlb-or-anon
  // range, a hugetlb hole before B4, ...): both are compared up to there.
  const refNotModelled = ref.stopped?.reason === 'notmodelled' ? ref.stopped.step : undefined;
  // A step that blocks in handle_userfault() may have a result on the engine's side (ret -1 and
  // the userfault message) and has none on the reference's: the two agree if both block there.
  // (The reference says 'userfault' for a step the kernel never returns from, a hang, too.)
  const engineBlocked = engine.stopped?.userfault === true || engine.stopped?.hang === true ? engine.stopped!.step : undefined;
  const bothBlocked = engineBlocked !== undefined && ref.stopped?.reason === 'userfault' && ref.stopped.step === engineBlocked ? engineBlocked : undefined;
  const limit = Math.min(engineNotModelled ?? Infinity, refNotModelled ?? Infinity, bothBlocked ?? Infinity);
  out.truncated = engineNotModelled !== undefined || refNotModelled !== undefined;
  /** The known bug that explains a difference first seen at `step`, if any. */
  const explain = (step: number, resultOnly: boolean): KnownBug | undefined => {
    if (STRICT) return undefined;
    for (const [bug, at] of ref.notes) if (RESULT_ONLY.has(bug) && resultOnly && at.includes(step)) return bug;
    for (const [bug, at] of ref.notes) if (!RESULT_ONLY.has(bug) && at[0] <= step) return bug;
    return undefined;
  };
  const n = Math.max(engine.results.length, ref.results.length);
  for (let i = 0; i < n; i++) {
    const e = engine.results[i];
    const r = ref.results[i];
    const stepNo = e?.step ?? r?.step ?? 0;
    if (stepNo >= limit) break;
    if (same(e, r)) continue;
    const difference = `step ${stepNo}:\n  engine:    ${showResult(e)}\n  reference: ${showResult(r)}` + (r ? '' : `\n  reference stopped: ${ref.stopped?.reason} ${ref.stopped?.message}`);
    const errnoOnly = e !== undefined && r !== undefined && e.op === r.op && e.op !== 'pagemap_scan' && e.errno !== r.errno;
    const bug = explain(stepNo, errnoOnly);
    if (!bug) {
      out.difference = difference;
      return out;
    }
    out.explained.push({ bug, step: stepNo, difference });
    // An errno-only bug leaves the state alone: go on, unless one side stopped there.
    if (!RESULT_ONLY.has(bug) || e?.step !== r?.step || engine.stopped?.step === stepNo || ref.stopped?.step === stepNo) return out;
  }
  if (out.truncated) return out;
  if (bothBlocked !== undefined) return out; // same stop; the state is not compared after a hang
  const eStop = engine.stopped?.step;
  const rStop = ref.stopped?.step;
  if (eStop !== rStop) {
    const difference = `stopped: engine at ${eStop ?? 'the end'} (${engine.stopped?.message ?? ''}), reference at ${rStop ?? 'the end'} (${ref.stopped?.reason ?? ''} ${ref.stopped?.message ?? ''})`;
    const bug = explain(Math.min(eStop ?? Infinity, rStop ?? Infinity), false);
    if (bug) out.explained.push({ bug, step: Math.min(eStop ?? Infinity, rStop ?? Infinity), difference });
    else out.difference = difference;
    return out;
  }
  if (ref.stopped?.reason === 'userfault' || ref.stopped?.reason === 'notmodelled' || !engine.process) return out;
  const [s, e] = window.map(Number);
  // hugetlb entries are compared through the scans (the probes): the two dumps do not describe
  // them alike, so the ranges of hugetlb VMAs are left out.
  const huge = ref.mm.vmas.filter((v) => v.huge).map((v): [number, number] => [v.start, v.end]);
  const sa = showRuns(maskRanges(engineDump(engine.process.mm, s, e), huge));
  const sb = showRuns(maskRanges(ref.dump(s, e), huge));
  if (sa !== sb) {
    const difference = `state after the run differs:\n  engine:\n    ${sa}\n  reference:\n    ${sb}`;
    const bug = explain(Infinity, false);
    if (bug) out.explained.push({ bug, step: Infinity, difference });
    else out.difference = difference;
  }
  return out;
}

/** The runs with the parts inside `ranges` (sorted, disjoint) replaced by "hugetlb". */
export function maskRanges(runs: StateRun[], ranges: [number, number][]): StateRun[] {
  if (!ranges.length) return runs;
  const out: StateRun[] = [];
  const push = (start: number, end: number, state: string): void => {
    if (start >= end) return;
    const last = out[out.length - 1];
    if (last && last.end === start && last.state === state) last.end = end;
    else out.push({ start, end, state });
  };
  for (const r of runs) {
    let at = r.start;
    for (const [a, b] of ranges) {
      if (b <= at || a >= r.end) continue;
      push(at, Math.max(at, a), r.state);
      push(Math.max(at, a), Math.min(r.end, b), 'hugetlb');
      at = Math.min(r.end, b);
    }
    push(at, r.end, r.state);
  }
  return out;
}

/**
 * The invariants of one scan result, whatever the state: a list of violations (empty if none).
 * Equal neighbours are allowed only where a bounce-buffer flush happened (every 512 regions),
 * unless `hugeBackouts`: a THP or hugetlb back-out re-emits into an emptied slot (spec §14 Q10).
 */
export function scanInvariants(arg: PmScanArg, r: StepResult, hugeBackouts = false): string[] {
  const bad: string[] = [];
  const regions = r.regions ?? [];
  const P = 4096n;
  const roundedEnd = ((arg.end + P - 1n) / P) * P;
  if (r.errno === 'EINVAL' || (r.errno === 'EFAULT' && r.walk_end === null)) {
    if (r.walk_end !== null) bad.push('walk_end written after an argument error');
    if (regions.length) bad.push('regions after an argument error');
    return bad;
  }
  if (r.errno === null && r.ret !== BigInt(regions.length)) bad.push(`ret ${r.ret} but ${regions.length} regions`);
  let pagesTotal = 0n;
  regions.forEach((g, i) => {
    if (g.start % P || g.end % P) bad.push(`region ${i} not page aligned`);
    if (g.start >= g.end) bad.push(`region ${i} empty or reversed`);
    if (g.start < arg.start || g.end > roundedEnd) bad.push(`region ${i} outside [start, rounded end)`);
    if (g.categories & ~Number(arg.return_mask)) bad.push(`region ${i} has categories outside return_mask`);
    if (i > 0) {
      const prev = regions[i - 1];
      if (g.start < prev.end) bad.push(`regions ${i - 1} and ${i} overlap or are unsorted`);
      if (g.start === prev.end && g.categories === prev.categories && i % 512 !== 0 && !hugeBackouts) {
        bad.push(`regions ${i - 1} and ${i} are adjacent with equal categories, and no bounce-buffer flush explains it`);
      }
    }
    pagesTotal += (g.end - g.start) / P;
  });
  if (arg.vec_len > 0n && BigInt(regions.length) > arg.vec_len) bad.push(`${regions.length} regions > vec_len ${arg.vec_len}`);
  if (arg.vec_len > 0n && arg.max_pages > 0n && pagesTotal > arg.max_pages) bad.push(`${pagesTotal} pages > max_pages ${arg.max_pages}`);
  if (arg.vec_len === 0n && regions.length) bad.push('regions without an output array');
  if (r.walk_end != null) {
    if (r.walk_end % P) bad.push('walk_end not page aligned');
    if (r.walk_end < arg.start || r.walk_end > roundedEnd) bad.push(`walk_end ${hex(r.walk_end)} outside [start, rounded end]`);
  } else bad.push('walk_end not written by a scan that ran');
  return bad;
}

/** Regions with neighbours of equal categories merged (the split at b disappears). */
export function coalesce(regions: { start: bigint; end: bigint; categories: number }[]): string[] {
  const out: { start: bigint; end: bigint; categories: number }[] = [];
  for (const g of regions) {
    const last = out[out.length - 1];
    if (last && last.end === g.start && last.categories === g.categories) last.end = g.end;
    else out.push({ ...g });
  }
  return out.map((g) => `${hex(g.start)}-${hex(g.end)}:${g.categories.toString(16)}`);
}
