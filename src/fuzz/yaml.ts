// programToYaml(program): a resolved Program written back as a scenario file (scenario-format.md)
// that parseScenario() reads as the same Program. Addresses are written relative to the mappings
// the scenario names (`m1+5p`) when one is close, sizes in pages (`64p`) or MiB when exact, bit
// sets as lists of names. Used to turn a random program into a ready-to-run repro.

import { pageSizeOf } from '../scenario/profiles';
import type { Expectation, Op, Program, Step, StepResult } from '../scenario/program';
import { VEC_ADDR } from '../scenario/program';
import { CATEGORY_NAMES, FLAG_NAMES, UFFD_FEATURES, UFFD_REGISTER_MODES, type PmScanArg } from '../uapi';

const hex = (v: bigint): string => `0x${v.toString(16)}`;
const MIB = 1n << 20n;
/** How far from a named mapping an address may be to be written relative to it. */
const NEAR = 64n * MIB;

type BitTable = readonly [string, bigint][];
const table = (names: readonly string[]): BitTable => names.map((n, bit) => [n, 1n << BigInt(bit)]);
const CATEGORIES = table(CATEGORY_NAMES);
const FLAGS = table(FLAG_NAMES);
const FEATURES: BitTable = Object.entries(UFFD_FEATURES).map(([n, b]) => [n, BigInt(b)]);
const MODES: BitTable = Object.entries(UFFD_REGISTER_MODES).map(([n, b]) => [n, BigInt(b)]);

/** `[WP_MATCHING, CHECK_WPASYNC]`; unknown bits as one hex number in the list. */
function bitList(v: bigint, names: BitTable): string {
  const parts: string[] = [];
  let known = 0n;
  for (const [n, b] of names) {
    known |= b;
    if (v & b) parts.push(n);
  }
  if (v & ~known) parts.push(hex(v & ~known));
  return `[${parts.join(', ')}]`;
}

function protText(prot: number): string {
  if (prot === 0) return 'none';
  if (prot & ~7) throw new Error(`prot 0x${prot.toString(16)} cannot be written in a scenario (only r, w, x)`);
  return (prot & 1 ? 'r' : '') + (prot & 2 ? 'w' : '') + (prot & 4 ? 'x' : '');
}

/** A YAML string scalar (JSON strings are valid YAML double-quoted scalars). */
const str = (s: string): string => JSON.stringify(s);

interface Named {
  name: string;
  start: bigint;
  end: bigint;
  /** The step that defines the name: usable from the next step on. */
  step: number;
}

class Writer {
  private readonly named: Named[] = [];
  readonly page: bigint;

  constructor(program: Program) {
    const page = pageSizeOf(program.kernel);
    if (page === undefined) throw new Error(`unknown kernel profile ${program.kernel}`);
    this.page = page;
    for (const s of program.steps) {
      if (s.op.op === 'mmap' && s.op.name !== undefined)
        this.named.push({ name: s.op.name, start: s.op.addr, end: s.op.addr + s.op.size, step: s.index });
    }
  }

  size(v: bigint): string {
    if (v !== 0n && v % MIB === 0n) return `${v / MIB}M`;
    if (v !== 0n && v % this.page === 0n) return `${v / this.page}p`;
    return v < 1n << 32n ? String(v) : hex(v);
  }

  /** An address as the step `at` may write it: relative to a name defined before it, or hex. */
  addr(v: bigint, at: number): string {
    const usable = this.named.filter((n) => n.step < at);
    // The latest mapping that contains v (or ends at it), else the nearest start.
    let best = [...usable].reverse().find((n) => v >= n.start && v <= n.end);
    if (!best) {
      let dist = NEAR + 1n;
      for (const n of usable) {
        const d = v >= n.start ? v - n.start : n.start - v;
        if (d < dist) {
          dist = d;
          best = n;
        }
      }
    }
    if (!best) return hex(v);
    if (v === best.start) return best.name;
    const off = v > best.start ? v - best.start : best.start - v;
    return `${best.name}${v > best.start ? '+' : '-'}${this.size(off)}`;
  }
}

function opBody(op: Op, at: number, w: Writer): string {
  const a = (v: bigint) => w.addr(v, at);
  switch (op.op) {
    case 'mmap': {
      const name = op.name !== undefined ? `, name: ${op.name}` : '';
      return `{addr: ${a(op.addr)}, size: ${w.size(op.size)}, kind: ${op.kind}, prot: ${protText(op.prot)}${name}}`;
    }
    case 'munmap':
    case 'uffd_unregister':
      return `{addr: ${a(op.addr)}, size: ${w.size(op.size)}}`;
    case 'mprotect':
      return `{addr: ${a(op.addr)}, size: ${w.size(op.size)}, prot: ${protText(op.prot)}}`;
    case 'madvise':
      return `{addr: ${a(op.addr)}, size: ${w.size(op.size)}, advice: ${op.advice}}`;
    case 'read':
    case 'write':
      return `{addr: ${a(op.addr)}, size: ${w.size(op.size)}, stride: ${w.size(op.stride)}}`;
    case 'uffd_open':
      return `{features: ${bitList(op.features, FEATURES)}}`;
    case 'uffd_close':
      return '{}';
    case 'uffd_register':
      return `{addr: ${a(op.addr)}, size: ${w.size(op.size)}, mode: ${bitList(op.mode, MODES)}}`;
    case 'uffd_writeprotect':
      return `{addr: ${a(op.addr)}, size: ${w.size(op.size)}, wp: ${op.wp}}`;
    case 'clear_refs':
      return `{value: ${op.value}}`;
    case 'pagemap_scan':
      return scanBody(op.arg, at, w);
  }
}

function scanBody(arg: PmScanArg, at: number, w: Writer): string {
  if (arg.walk_end !== 0n) throw new Error('a scenario cannot set pm_scan_arg.walk_end');
  if (arg.vec !== VEC_ADDR && arg.vec !== 0n)
    throw new Error(`a scenario's vec is the output array or null, not ${hex(arg.vec)}`);
  const parts = [`start: ${w.addr(arg.start, at)}`, `end: ${w.addr(arg.end, at)}`];
  if (arg.flags) parts.push(`flags: ${bitList(arg.flags, FLAGS)}`);
  parts.push(`vec_len: ${arg.vec_len < 1n << 32n ? arg.vec_len : hex(arg.vec_len)}`);
  if (arg.vec === 0n) parts.push('vec: null');
  if (arg.max_pages) parts.push(`max_pages: ${arg.max_pages < 1n << 32n ? arg.max_pages : hex(arg.max_pages)}`);
  if (arg.category_inverted) parts.push(`category_inverted: ${bitList(arg.category_inverted, CATEGORIES)}`);
  if (arg.category_mask) parts.push(`category_mask: ${bitList(arg.category_mask, CATEGORIES)}`);
  if (arg.category_anyof_mask) parts.push(`category_anyof_mask: ${bitList(arg.category_anyof_mask, CATEGORIES)}`);
  parts.push(`return_mask: ${arg.return_mask === 0x1ffn ? '0x1ff' : bitList(arg.return_mask, CATEGORIES)}`);
  if (arg.size !== 96n) parts.push(`size: ${arg.size}`);
  return `{${parts.join(', ')}}`;
}

function expectLines(step: Step, e: Expectation, w: Writer): string[] {
  const at = step.index;
  if (step.op.op !== 'pagemap_scan') {
    return [e.errno ? `    expect: {errno: ${e.errno}}` : '    expect: {ok: true}'];
  }
  const out = ['    expect:'];
  if (e.ret !== undefined) out.push(`      ret: ${e.ret}`);
  if (e.errno !== undefined) out.push(`      errno: ${e.errno ?? 'null'}`);
  if (e.walk_end !== undefined) out.push(`      walk_end: ${e.walk_end === null ? 'null' : w.addr(e.walk_end, at + 1)}`);
  if (e.regions !== undefined) {
    if (e.regions.length === 0) out.push('      regions: []');
    else {
      out.push('      regions:');
      for (const g of e.regions) {
        const cats = CATEGORIES.filter(([, b]) => BigInt(g.categories) & b).map(([n]) => n);
        out.push(`        - [${w.addr(g.start, at + 1)}, ${w.addr(g.end, at + 1)}, [${cats.join(', ')}]]`);
      }
    }
  }
  return out;
}

/**
 * The scenario text of `program`. parseScenario(programToYaml(p)) gives back p's name,
 * description, kernel, system, names and, step by step, its ops, may_fail and expectations.
 * `comments` are written at the top, one `#` line each.
 */
export function programToYaml(program: Program, comments: string[] = []): string {
  const w = new Writer(program);
  const out: string[] = comments.map((c) => `# ${c}`.trimEnd());
  out.push(`name: ${str(program.name)}`);
  if (program.description !== undefined) out.push(`description: ${str(program.description)}`);
  out.push(`kernel: ${str(program.kernel)}`);
  const sys = program.system;
  const pools = sys.hugetlbPages
    ? `, hugetlb_pages: {${Object.entries(sys.hugetlbPages)
        .map(([k, v]) => `${k}: ${v}`)
        .join(', ')}}`
    : '';
  out.push(`system: {swap: ${sys.swap ? 'on' : 'off'}, thp: ${sys.thp}${pools}}`);
  out.push('steps:');
  for (const step of program.steps) {
    out.push(`  - ${step.op.op}: ${opBody(step.op, step.index, w)}`);
    if (step.mayFail) out.push('    may_fail: true');
    if (step.expect) out.push(...expectLines(step, step.expect, w));
  }
  return out.join('\n') + '\n';
}

/**
 * `program` with the results of a run as its expectations (what `record` does for scenario
 * files): every step that has a result gets an expect block saying exactly that result.
 */
export function withExpectations(program: Program, results: readonly StepResult[]): Program {
  const byStep = new Map(results.map((r) => [r.step, r]));
  return {
    ...program,
    steps: program.steps.map((s) => {
      const r = byStep.get(s.index);
      if (!r) {
        const { expect: _dropped, ...rest } = s;
        return rest;
      }
      const expect: Expectation =
        s.op.op === 'pagemap_scan'
          ? { ret: r.ret, errno: r.errno, walk_end: r.walk_end ?? null, regions: r.regions ?? [], where: s.where }
          : r.errno
            ? { errno: r.errno, where: s.where }
            : { ok: true, where: s.where };
      return { ...s, expect };
    }),
  };
}
