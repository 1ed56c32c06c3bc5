// Checking a step's `expect` block against what a step returned.

import { categoryNames, type ErrnoName } from '../uapi';
import type { Expectation, Step, StepResult } from './program';
import { hex } from './json';

/** One field that did not hold: what was expected and what came back, both printable. */
export interface Mismatch {
  field: 'ret' | 'errno' | 'walk_end' | 'regions' | 'ok' | 'reached' | 'userfault' | 'hang';
  expected: string;
  got: string;
}

const showErrno = (e: ErrnoName | null | undefined): string => e ?? 'none';
const showRegion = (r: { start: bigint; end: bigint; categories: number }): string =>
  `[${hex(r.start)}, ${hex(r.end)}) ${categoryNames(r.categories).join('|') || '0'}`;

const showUserfault = (u: { address: bigint; flags?: readonly string[] } | undefined): string =>
  u === undefined
    ? 'the step returns'
    : `blocks on userfaultfd: PAGEFAULT address ${hex(u.address)}` + (u.flags ? ` flags ${u.flags.join('|') || '0'}` : '');

const showHang = (h: { why: string; address?: bigint } | undefined): string =>
  h === undefined ? 'the step returns' : `never returns: ${h.why}` + (h.address !== undefined ? ` at ${hex(h.address)}` : '');

/** The fields of `expect` that `result` fails; empty when it holds. result undefined: not reached. */
export function checkExpectation(step: Step, expect: Expectation, result: StepResult | undefined): Mismatch[] {
  if (!result) return [{ field: 'reached', expected: `step ${step.index} to run`, got: 'the scenario stopped before it' }];
  const out: Mismatch[] = [];
  // A step the kernel never returns from holds only if the expectation says so, for that reason
  // (and at that byte, when the expectation names one).
  if (expect.hang !== undefined || result.hang !== undefined) {
    const want = expect.hang;
    const got = result.hang;
    const holds = want !== undefined && got !== undefined && want.why === got.why && (want.address === undefined || want.address === got.address);
    if (!holds) out.push({ field: 'hang', expected: showHang(want), got: showHang(got) });
    if (got !== undefined) return out; // nothing else of a step that never returned is comparable
  }
  // A step that blocked on userfaultfd holds only if the expectation says so, with that message.
  if (expect.userfault !== undefined || result.userfault !== undefined) {
    const want = expect.userfault;
    const got = result.userfault;
    const holds =
      want !== undefined &&
      got !== undefined &&
      want.address === got.address &&
      (want.flags === undefined || want.flags.join('|') === got.flags.join('|'));
    if (!holds) out.push({ field: 'userfault', expected: showUserfault(want), got: showUserfault(got) });
    if (got !== undefined) return out; // nothing else of a step that never returned is comparable
  }
  if (expect.errno !== undefined && expect.errno !== result.errno) {
    out.push({ field: 'errno', expected: showErrno(expect.errno), got: showErrno(result.errno) });
  }
  if (expect.ok && result.errno) out.push({ field: 'ok', expected: 'success', got: result.errno });
  if (expect.ret !== undefined && expect.ret !== result.ret) {
    out.push({ field: 'ret', expected: String(expect.ret), got: String(result.ret) });
  }
  if (expect.walk_end !== undefined && expect.walk_end !== result.walk_end) {
    out.push({
      field: 'walk_end',
      expected: expect.walk_end === null ? 'null' : hex(expect.walk_end),
      got: result.walk_end == null ? 'null' : hex(result.walk_end),
    });
  }
  if (expect.regions !== undefined) {
    const want = expect.regions.map(showRegion);
    const got = (result.regions ?? []).map(showRegion);
    if (want.length !== got.length || want.some((w, i) => w !== got[i])) {
      out.push({ field: 'regions', expected: want.join('\n') || '(none)', got: got.join('\n') || '(none)' });
    }
  }
  return out;
}
