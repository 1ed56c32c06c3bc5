// `exportC(program)`: one standalone, readable C program that performs a scenario on the real
// kernel and prints its results as `pagemap-scan run --json` does (scenario-format.md,
// "Machine-readable output"). It is the runtime part of replay.c (everything above its stdin
// driver) in its OUTPUT_CONTRACT mode, followed by a generated main() that calls the step
// functions in order with literal arguments.

import { CATEGORY_NAMES, FLAG_NAMES, PAGE_SIZE, UFFD_FEATURES, UFFD_REGISTER_MODES } from '../uapi';
import { ADVICES, type Program, type Step, VEC_ADDR } from '../scenario/program';
import { readReplaySource } from './build';
import { DEFAULT_STEP_LIMIT_MS, DEFAULT_STEP_TIMEOUT_MS } from './run';

/** The line of replay.c where its stdin driver starts; export-c keeps what is above it. */
export const DRIVER_MARKER = '/* ==== replay: stdin driver';

/** The runtime part of replay.c: harness set-up and the step functions. */
export function replayRuntime(source = readReplaySource()): string {
  const at = source.indexOf(DRIVER_MARKER);
  if (at < 0) throw new Error('replay.c has no stdin-driver marker; cannot export C');
  return source.slice(0, at).trimEnd() + '\n';
}

export interface ExportCOptions {
  /** A step blocked this long (using no CPU) is reported as a hang. Default 5000. */
  stepTimeoutMs?: number;
  /** A step running this long in all is reported as a hang. Default 60000. */
  stepLimitMs?: number;
}

const comment = (text: string): string => text.replace(/\*\//g, '* /').replace(/\r?\n/g, ' ');

/** A C string literal of `text` (UTF-8 bytes; `?` escaped so no trigraph can form under -std=c11). */
export function cString(text: string): string {
  let out = '"';
  for (const byte of Buffer.from(text, 'utf8')) {
    const ch = String.fromCharCode(byte);
    if (ch === '"' || ch === '\\' || ch === '?') out += '\\' + ch;
    else if (byte < 0x20 || byte >= 0x7f) out += '\\' + byte.toString(8).padStart(3, '0');
    else out += ch;
  }
  return out + '"';
}

function u64(v: bigint): string {
  return `0x${v.toString(16)}ULL`;
}

/** Counts read better in decimal. */
function count(v: bigint): string {
  return v < 1n << 32n ? String(v) : `${v}ULL`;
}

function bitNames(v: bigint, names: readonly string[] | Record<string, number>): string {
  const entries: [string, bigint][] = Array.isArray(names)
    ? (names as readonly string[]).map((n, bit) => [n, 1n << BigInt(bit)])
    : Object.entries(names as Record<string, number>).map(([n, b]) => [n, BigInt(b)]);
  const parts = entries.filter(([, b]) => (v & b) !== 0n).map(([n]) => n);
  const known = entries.reduce((a, [, b]) => a | b, 0n);
  if ((v & ~known) !== 0n) parts.push(`0x${(v & ~known).toString(16)}`);
  return parts.length ? parts.join('|') : '0';
}

/** A u64 literal with its symbolic meaning as a comment, e.g. `0x3ULL /* WP_MATCHING|CHECK_WPASYNC *\/`. */
function bits(v: bigint, names: readonly string[] | Record<string, number>): string {
  return v === 0n ? '0' : `${u64(v)} /* ${bitNames(v, names)} */`;
}

function protC(prot: number): string {
  if (prot === 0) return 'PROT_NONE';
  const parts: string[] = [];
  if (prot & 1) parts.push('PROT_READ');
  if (prot & 2) parts.push('PROT_WRITE');
  if (prot & 4) parts.push('PROT_EXEC');
  if (prot & ~7) parts.push(`0x${(prot & ~7).toString(16)}`);
  return parts.join(' | ');
}

/** Names a scenario address relative to the named mappings: `heap+5p`. */
function addressNamer(program: Program): (addr: bigint) => string | undefined {
  const named: { name: string; start: bigint; end: bigint }[] = [];
  for (const s of program.steps) {
    if (s.op.op === 'mmap' && s.op.name) named.push({ name: s.op.name, start: s.op.addr, end: s.op.addr + s.op.size });
  }
  const page = BigInt(PAGE_SIZE);
  return (addr) => {
    if (addr === VEC_ADDR) return 'VEC_ADDR';
    const m = named.find((n) => addr >= n.start && addr <= n.end);
    if (!m) return undefined;
    const off = addr - m.start;
    if (off === 0n) return m.name;
    return off % page === 0n ? `${m.name}+${off / page}p` : `${m.name}+0x${off.toString(16)}`;
  };
}

function stepCall(step: Step, name: (a: bigint) => string | undefined): string[] {
  const op = step.op;
  const n = String(step.index);
  const mf = step.mayFail ? 'true' : 'false';
  const addr = (a: bigint): string => {
    const s = name(a);
    return s ? `${u64(a)} /* ${comment(s)} */` : u64(a);
  };
  const size = (v: bigint): string =>
    v % BigInt(PAGE_SIZE) === 0n && v !== 0n ? `${u64(v)} /* ${v / BigInt(PAGE_SIZE)}p */` : u64(v);
  const stop = (call: string): string[] => [`if (!${call})`, '\treturn 2; /* stopped: printed why */'];
  switch (op.op) {
    case 'mmap':
      return stop(`do_mmap(${n}, ${mf}, ${addr(op.addr)}, ${size(op.size)}, "${op.kind}", ${protC(op.prot)})`);
    case 'munmap':
      return stop(`do_munmap(${n}, ${mf}, ${addr(op.addr)}, ${size(op.size)})`);
    case 'mprotect':
      return stop(`do_mprotect(${n}, ${mf}, ${addr(op.addr)}, ${size(op.size)}, ${protC(op.prot)})`);
    case 'madvise':
      return stop(
        `do_madvise(${n}, ${mf}, ${addr(op.addr)}, ${size(op.size)}, ${ADVICES[op.advice]} /* ${op.advice} */)`,
      );
    case 'read':
    case 'write':
      return stop(
        `do_touch(${n}, ${mf}, ${op.op === 'write'}, ${addr(op.addr)}, ${size(op.size)}, ${size(op.stride)})`,
      );
    case 'uffd_open':
      return stop(`do_uffd_open(${n}, ${mf}, ${bits(op.features, UFFD_FEATURES)})`);
    case 'uffd_close':
      return stop(`do_uffd_close(${n}, ${mf})`);
    case 'uffd_register':
      return stop(
        `do_uffd_register(${n}, ${mf}, ${addr(op.addr)}, ${size(op.size)}, ${bits(op.mode, UFFD_REGISTER_MODES)})`,
      );
    case 'uffd_unregister':
      return stop(`do_uffd_unregister(${n}, ${mf}, ${addr(op.addr)}, ${size(op.size)})`);
    case 'uffd_writeprotect':
      return stop(`do_uffd_writeprotect(${n}, ${mf}, ${addr(op.addr)}, ${size(op.size)}, ${op.wp})`);
    case 'clear_refs':
      return stop(`do_clear_refs(${n}, ${mf}, ${count(op.value)})`);
    case 'pagemap_scan': {
      const a = op.arg;
      return [
        `do_pagemap_scan(${n}, (struct pm_scan_arg){`,
        `\t.size = ${count(a.size)},`,
        `\t.flags = ${bits(a.flags, FLAG_NAMES)},`,
        `\t.start = ${addr(a.start)},`,
        `\t.end = ${addr(a.end)},`,
        `\t.walk_end = ${a.walk_end === 0n ? '0' : u64(a.walk_end)},`,
        `\t.vec = ${a.vec === VEC_ADDR ? 'VEC_ADDR' : u64(a.vec)},`,
        `\t.vec_len = ${count(a.vec_len)},`,
        `\t.max_pages = ${count(a.max_pages)},`,
        `\t.category_inverted = ${bits(a.category_inverted, CATEGORY_NAMES)},`,
        `\t.category_mask = ${bits(a.category_mask, CATEGORY_NAMES)},`,
        `\t.category_anyof_mask = ${bits(a.category_anyof_mask, CATEGORY_NAMES)},`,
        `\t.return_mask = ${bits(a.return_mask, CATEGORY_NAMES)},`,
        '});',
      ];
    }
  }
}

function stepTitle(step: Step): string {
  const where = step.where.file ? ` (${step.where.file}:${step.where.line})` : '';
  const name = step.op.op === 'mmap' && step.op.name ? ` "${step.op.name}"` : '';
  const mayFail = step.mayFail ? ', may fail' : '';
  return comment(`step ${step.index}: ${step.op.op}${name}${mayFail}${where}`);
}

/** A standalone C program performing `program`; build it with `cc -std=c11 -Wall -Werror`. */
export function exportC(program: Program, opts: ExportCOptions = {}): string {
  const name = addressNamer(program);
  const timeout = opts.stepTimeoutMs ?? DEFAULT_STEP_TIMEOUT_MS;
  const limit = opts.stepLimitMs ?? DEFAULT_STEP_LIMIT_MS;
  const out: string[] = [];
  out.push(
    '/*',
    ` * Scenario "${comment(program.name)}"${program.file ? ` from ${comment(program.file)}` : ''}, exported by pagemap-scan.`,
    ...(program.description
      ? program.description
          .trimEnd()
          .split('\n')
          .map((l) => ` *   ${comment(l)}`.trimEnd())
      : []),
    ' *',
    ' * Build and run:  cc -std=c11 -Wall -Werror -o scenario scenario.c && ./scenario',
    ' * Prints the results as one JSON document, in the shape of `pagemap-scan run --json`:',
    ' *   { "scenario": NAME, "kernel": <uname -r>, "steps": [ {step, op, ret, errno, walk_end?,',
    ' *     regions?: [{start, end, categories: [names]}]} ], "stopped"?: {step, message} }',
    ' * Exit status: 0 when every step ran, 2 when one stopped the scenario (see "stopped"),',
    ' * 3 when this kernel has no PAGEMAP_SCAN. The runtime below is src/kernel/replay.c without',
    ' * its stdin driver.',
    ' */',
    '',
    replayRuntime(),
    '/* ==== the scenario ==================================================================== */',
    '',
    'int main(void)',
    '{',
    '\toutput_mode = OUTPUT_CONTRACT; /* print what `pagemap-scan run --json` prints */',
    `\tscenario_name = ${cString(program.name)};`,
    `\tharness_init(${timeout}, ${limit}); /* hang when blocked ${timeout} ms, or running ${limit} ms */`,
  );
  for (const step of program.steps) {
    out.push('', `\t/* ${stepTitle(step)} */`);
    for (const line of stepCall(step, name)) out.push('\t' + line);
  }
  out.push('', '\tprint_end("complete", 0, NULL);', '\treturn 0;', '}', '');
  return out.join('\n');
}
