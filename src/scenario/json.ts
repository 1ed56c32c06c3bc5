// The machine-readable result of a scenario (`run --json`), as scenario-format.md fixes it:
// lowercase 0x hex strings for addresses, names for categories in bit order, every step.

import { categoryNames, type CategoryName, type ErrnoName } from '../uapi';
import type { StepResult } from './program';

export const hex = (v: bigint | number): string => '0x' + v.toString(16);

export interface JsonRegion {
  start: string;
  end: string;
  categories: CategoryName[];
}

export interface JsonStep {
  step: number;
  op: string;
  ret: number | string;
  errno: ErrnoName | null;
  walk_end?: string | null;
  regions?: JsonRegion[];
  /** The step blocked in handle_userfault() with this UFFD_EVENT_PAGEFAULT message (ret -1, errno null). */
  userfault?: { address: string; flags: string[] };
  /** The kernel never returns from the step (ret -1, errno null): why, and for a touch the byte. */
  hang?: { why: string; address?: string };
}

export interface JsonScenario {
  scenario: string;
  kernel: string;
  steps: JsonStep[];
  /** Present when the scenario stopped early: the step and why. */
  stopped?: { step: number; message: string };
}

/** ret as a JSON number when exact, else a hex string. */
function jsonRet(ret: bigint): number | string {
  return ret >= BigInt(Number.MIN_SAFE_INTEGER) && ret <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(ret) : hex(ret);
}

export function stepToJson(r: StepResult): JsonStep {
  const out: JsonStep = { step: r.step, op: r.op, ret: jsonRet(r.ret), errno: r.errno };
  if (r.op === 'pagemap_scan') {
    out.walk_end = r.walk_end == null ? null : hex(r.walk_end);
    out.regions = (r.regions ?? []).map((g) => ({ start: hex(g.start), end: hex(g.end), categories: categoryNames(g.categories) }));
  }
  if (r.userfault) out.userfault = { address: hex(r.userfault.address), flags: [...r.userfault.flags] };
  if (r.hang) out.hang = { why: r.hang.why, ...(r.hang.address !== undefined && { address: hex(r.hang.address) }) };
  return out;
}

export function scenarioToJson(
  scenario: string,
  kernel: string,
  results: StepResult[],
  stopped?: { step: number; message: string },
): JsonScenario {
  const out: JsonScenario = { scenario, kernel, steps: results.map(stepToJson) };
  if (stopped) out.stopped = { step: stopped.step, message: stopped.message };
  return out;
}
