// Validated steps → the resolved Program: mapping names are defined by `mmap.name` in step order,
// addresses like `heap+5p` become u64s, defaults are filled in (pm_scan_arg: zero except size and
// vec_len; `vec` is VEC_ADDR unless `vec: null`).

import { U64_MAX, UFFD_FEATURES, UFFD_REGISTER_MODES, PROT_READ, PROT_WRITE } from '../uapi';
import type { Path, Source } from './parse';
import { scanArg, type ExpectedRegion, type Expectation, type Op, type Program, type Step } from './program';
import type { Problem } from './schema';
import type { RawScenario, RawStep } from './validate';
import type { AddressExpr } from './values';

/** Thrown at the first resolution problem (problems are found in file order). */
export class ResolveProblem extends Error {
  constructor(readonly problem: Problem) {
    super(problem.detail);
  }
}

const hex = (v: bigint) => `0x${v.toString(16)}`;

export function resolve(src: Source, raw: RawScenario, file: string): Program {
  const names = new Map<string, bigint>();
  const definedBy = new Map<string, number>();
  // Every name the file defines, to tell "used before its mmap" from "unknown".
  const laterNames = new Map<string, number>();
  raw.steps.forEach((s, i) => {
    if (s.op === 'mmap' && s.body.name !== undefined && !laterNames.has(s.body.name)) laterNames.set(s.body.name, i + 1);
  });

  let current = 0; // the step being resolved
  const unknownName = (name: string): string => {
    const quoted = JSON.stringify(name);
    const later = laterNames.get(name);
    if (later === current) return `mapping name ${quoted} is defined by this mmap, it cannot give its own address`;
    if (later !== undefined) return `mapping name ${quoted} is used before step ${later} defines it`;
    if (names.size === 0) return `unknown mapping name ${quoted}; no mmap has defined a name yet`;
    return `unknown mapping name ${quoted}; defined so far: ${[...names.keys()].join(', ')}`;
  };
  const address = (expr: AddressExpr, path: Path): bigint => {
    if (expr.kind === 'number') return expr.value;
    const base = names.get(expr.name);
    if (base === undefined) throw new ResolveProblem({ path, detail: unknownName(expr.name) });
    const v = base + expr.offset;
    if (v < 0n) throw new ResolveProblem({ path, detail: `${expr.text} = ${hex(base)} - ${hex(-expr.offset)} is below 0` });
    if (v > U64_MAX) throw new ResolveProblem({ path, detail: `${expr.text} = ${hex(v)} is above 2^64-1` });
    return v;
  };

  const steps: Step[] = raw.steps.map((s, i) => {
    const index = i + 1; // validation stopped on any problem, so these are all the file's steps
    current = index;
    const at = ['steps', index - 1];
    const op = resolveOp(s, [...at, s.op], address, raw.pageSize);
    if (op.op === 'mmap' && op.name !== undefined) {
      const prev = definedBy.get(op.name);
      if (prev !== undefined)
        throw new ResolveProblem({
          path: [...at, 'mmap', 'name'],
          detail: `mapping name ${JSON.stringify(op.name)} is already defined by step ${prev}`,
        });
      names.set(op.name, op.addr);
      definedBy.set(op.name, index);
    }
    const step: Step = { index, op, mayFail: s.mayFail, where: src.where(at) };
    if (s.expect) step.expect = resolveExpect(s.expect, [...at, 'expect'], address, src);
    return step;
  });

  const top = raw.top;
  const sys = top.system ?? {};
  const program: Program = {
    name: top.name ?? defaultName(file),
    file,
    kernel: raw.kernel,
    system: { swap: sys.swap ?? false, thp: sys.thp ?? 'madvise' },
    steps,
    names,
  };
  if (top.description !== undefined) program.description = top.description;
  if (sys.hugetlb_pages) {
    const pools: { '2M'?: number; '1G'?: number } = {};
    if (sys.hugetlb_pages['2M'] !== undefined) pools['2M'] = sys.hugetlb_pages['2M'];
    if (sys.hugetlb_pages['1G'] !== undefined) pools['1G'] = sys.hugetlb_pages['1G'];
    program.system.hugetlbPages = pools;
  }
  if (sys.read_ahead_kb !== undefined) program.system.readAheadKb = sys.read_ahead_kb;
  return program;
}

/** `scenarios/write-watch.yaml` → `write-watch`. */
export function defaultName(file: string): string {
  const base = file.split(/[\\/]/).pop() ?? file;
  const dot = base.lastIndexOf('.');
  return dot > 0 ? base.slice(0, dot) : base;
}

type Addr = (expr: AddressExpr, path: Path) => bigint;

function resolveOp(s: RawStep, at: Path, address: Addr, pageSize: bigint): Op {
  const a = (expr: AddressExpr, key: string) => address(expr, [...at, key]);
  switch (s.op) {
    case 'mmap': {
      const b = s.body;
      const op: Op = { op: 'mmap', addr: a(b.addr, 'addr'), size: b.size, kind: b.kind, prot: b.prot ?? PROT_READ | PROT_WRITE };
      if (b.name !== undefined) op.name = b.name;
      return op;
    }
    case 'munmap':
    case 'uffd_unregister':
      return { op: s.op, addr: a(s.body.addr, 'addr'), size: s.body.size };
    case 'mprotect':
      return { op: 'mprotect', addr: a(s.body.addr, 'addr'), size: s.body.size, prot: s.body.prot };
    case 'madvise':
      return { op: 'madvise', addr: a(s.body.addr, 'addr'), size: s.body.size, advice: s.body.advice };
    case 'read':
    case 'write': {
      const stride = s.body.stride ?? pageSize;
      if (stride === 0n) throw new ResolveProblem({ path: [...at, 'stride'], detail: 'expected a stride of at least 1 byte, got 0' });
      return { op: s.op, addr: a(s.body.addr, 'addr'), size: s.body.size, stride };
    }
    case 'uffd_open':
      return { op: 'uffd_open', features: s.body.features ?? BigInt(UFFD_FEATURES.WP_ASYNC | UFFD_FEATURES.WP_UNPOPULATED) };
    case 'uffd_close':
      return { op: 'uffd_close' };
    case 'uffd_register':
      return { op: 'uffd_register', addr: a(s.body.addr, 'addr'), size: s.body.size, mode: s.body.mode ?? BigInt(UFFD_REGISTER_MODES.WP) };
    case 'uffd_writeprotect':
      return { op: 'uffd_writeprotect', addr: a(s.body.addr, 'addr'), size: s.body.size, wp: s.body.wp };
    case 'clear_refs':
      return { op: 'clear_refs', value: s.body.value };
    case 'pagemap_scan': {
      const b = s.body;
      return {
        op: 'pagemap_scan',
        arg: scanArg({
          ...(b.size !== undefined && { size: b.size }),
          ...(b.flags !== undefined && { flags: b.flags }),
          ...(b.start && { start: a(b.start, 'start') }),
          ...(b.end && { end: a(b.end, 'end') }),
          ...(b.vec === null && { vec: 0n }),
          ...(b.vec_len !== undefined && { vec_len: b.vec_len }),
          ...(b.max_pages !== undefined && { max_pages: b.max_pages }),
          ...(b.category_inverted !== undefined && { category_inverted: b.category_inverted }),
          ...(b.category_mask !== undefined && { category_mask: b.category_mask }),
          ...(b.category_anyof_mask !== undefined && { category_anyof_mask: b.category_anyof_mask }),
          ...(b.return_mask !== undefined && { return_mask: b.return_mask }),
        }),
      };
    }
  }
}

type RawExpect = NonNullable<RawStep['expect']>;

function resolveExpect(e: RawExpect, at: Path, address: Addr, src: Source): Expectation {
  const out: Expectation = { where: src.where(at, true) };
  if ('ok' in e && e.ok) out.ok = true;
  if (e.errno !== undefined) out.errno = e.errno;
  if ('userfault' in e && e.userfault !== undefined)
    out.userfault = {
      address: address(e.userfault.address, [...at, 'userfault', 'address']),
      ...(e.userfault.flags !== undefined && { flags: e.userfault.flags }),
    };
  if ('hang' in e && e.hang !== undefined)
    out.hang = {
      why: e.hang.why,
      ...(e.hang.address !== undefined && { address: address(e.hang.address, [...at, 'hang', 'address']) }),
    };
  if ('ret' in e && e.ret !== undefined) out.ret = e.ret;
  if ('walk_end' in e && e.walk_end !== undefined)
    out.walk_end = e.walk_end === null ? null : address(e.walk_end, [...at, 'walk_end']);
  if ('regions' in e && e.regions !== undefined)
    out.regions = e.regions.map(
      (r, i): ExpectedRegion => ({
        start: address(r.start, [...at, 'regions', i, 0]),
        end: address(r.end, [...at, 'regions', i, 1]),
        categories: r.categories,
      }),
    );
  return out;
}
