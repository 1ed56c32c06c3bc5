// programToYaml(): a resolved Program back to scenario YAML (scenario-format.md), so that a
// counter-example found by a property test can be saved and run with `pagemap-scan run FILE`.
// Numbers are written as quoted hex strings, bits as integers: any Program survives the trip
// through parseScenario() unchanged (checked by roundTrip()).

import { parseScenario } from '../../src/scenario';
import type { Op, Program, Step } from '../../src/scenario/program';
import { VEC_ADDR } from '../../src/scenario/program';

const hex = (v: bigint): string => `"0x${v.toString(16)}"`;

function prot(p: number): string {
  const letters = (p & 1 ? 'r' : '') + (p & 2 ? 'w' : '') + (p & 4 ? 'x' : '');
  return letters || 'none';
}

function body(op: Op): string {
  const kv = (pairs: [string, string][]): string => `{${pairs.map(([k, v]) => `${k}: ${v}`).join(', ')}}`;
  switch (op.op) {
    case 'mmap': {
      const pairs: [string, string][] = [['addr', hex(op.addr)], ['size', hex(op.size)], ['kind', op.kind], ['prot', prot(op.prot)]];
      if (op.name !== undefined) pairs.push(['name', op.name]);
      return kv(pairs);
    }
    case 'munmap':
    case 'uffd_unregister':
      return kv([['addr', hex(op.addr)], ['size', hex(op.size)]]);
    case 'mprotect':
      return kv([['addr', hex(op.addr)], ['size', hex(op.size)], ['prot', prot(op.prot)]]);
    case 'madvise':
      return kv([['addr', hex(op.addr)], ['size', hex(op.size)], ['advice', op.advice]]);
    case 'read':
    case 'write':
      return kv([['addr', hex(op.addr)], ['size', hex(op.size)], ['stride', hex(op.stride)]]);
    case 'uffd_open':
      return kv([['features', hex(op.features)]]);
    case 'uffd_close':
      return '{}';
    case 'uffd_register':
      return kv([['addr', hex(op.addr)], ['size', hex(op.size)], ['mode', hex(op.mode)]]);
    case 'uffd_writeprotect':
      return kv([['addr', hex(op.addr)], ['size', hex(op.size)], ['wp', String(op.wp)]]);
    case 'clear_refs':
      return kv([['value', hex(op.value)]]);
    case 'pagemap_scan': {
      const a = op.arg;
      if (a.walk_end !== 0n) throw new Error('programToYaml: a scenario cannot give walk_end');
      if (a.vec !== 0n && a.vec !== VEC_ADDR) throw new Error('programToYaml: a scenario cannot give vec other than null');
      const pairs: [string, string][] = [
        ['start', hex(a.start)],
        ['end', hex(a.end)],
        ['flags', hex(a.flags)],
        ['vec_len', hex(a.vec_len)],
        ['max_pages', hex(a.max_pages)],
        ['category_inverted', hex(a.category_inverted)],
        ['category_mask', hex(a.category_mask)],
        ['category_anyof_mask', hex(a.category_anyof_mask)],
        ['return_mask', hex(a.return_mask)],
        ['size', hex(a.size)],
      ];
      if (a.vec === 0n) pairs.push(['vec', 'null']);
      return kv(pairs);
    }
  }
}

function stepYaml(step: Step): string {
  let out = `  - ${step.op.op}: ${body(step.op)}\n`;
  if (step.mayFail) out += '    may_fail: true\n';
  return out;
}

/** The scenario text of `program` (expectations are not written). `comment` lines go on top. */
export function programToYaml(program: Program, comment: string[] = []): string {
  let out = comment.map((line) => `# ${line}\n`).join('');
  out += `name: ${JSON.stringify(program.name)}\n`;
  out += `kernel: ${JSON.stringify(program.kernel)}\n`;
  const sys = program.system;
  let system = `{swap: ${sys.swap ? 'on' : 'off'}, thp: ${sys.thp}`;
  if (sys.hugetlbPages) {
    const pools = Object.entries(sys.hugetlbPages).map(([k, v]) => `${JSON.stringify(k)}: ${v}`);
    system += `, hugetlb_pages: {${pools.join(', ')}}`;
  }
  out += `system: ${system}}\n`;
  out += program.steps.length ? 'steps:\n' : 'steps: []\n';
  for (const step of program.steps) out += stepYaml(step);
  return out;
}

/** Parse the YAML of programToYaml(program) and check that it gives the same steps back. */
export function roundTrip(program: Program, file = 'counterexample.yaml'): Program {
  const text = programToYaml(program);
  const back = parseScenario(text, file);
  const strip = (p: Program) => p.steps.map((s) => ({ index: s.index, op: s.op, mayFail: s.mayFail }));
  const a = JSON.stringify(strip(program), (_, v) => (typeof v === 'bigint' ? `${v}n` : v));
  const b = JSON.stringify(strip(back), (_, v) => (typeof v === 'bigint' ? `${v}n` : v));
  if (a !== b || back.kernel !== program.kernel || JSON.stringify(back.system) !== JSON.stringify(program.system)) {
    throw new Error(`programToYaml does not round-trip:\n${text}\n${a}\n${b}`);
  }
  return back;
}
