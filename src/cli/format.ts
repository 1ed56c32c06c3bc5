// Human-readable rendering of scan arguments and results. Addresses are shown in hex and, when
// they fall in a named mapping, as NAME+OFFSET in pages, the way scenarios write them.

import type { Chalk } from 'chalk';
import {
  CATEGORY_NAMES,
  FLAG_NAMES,
  PAGE_SIZE,
  PM_SCAN_CATEGORIES,
  PROT_EXEC,
  PROT_READ,
  PROT_WRITE,
  UFFD_FEATURES,
  UFFD_REGISTER_MODES,
  categoryNames,
  type PmScanArg,
} from '../uapi';
import type { Op, Program, StepResult } from '../scenario/program';
import { hex } from '../scenario/json';
import { HANG_TEXT } from '../mm/hang';

/** NAME+Np for an address inside (or at the end of) a named mapping, else hex. */
export function symbolic(addr: bigint, names: Map<string, bigint>): string {
  let best: [string, bigint] | undefined;
  for (const [name, start] of names) {
    if (start <= addr && (!best || start > best[1])) best = [name, start];
  }
  if (!best) return hex(addr);
  const off = addr - best[1];
  if (off === 0n) return best[0];
  return off % BigInt(PAGE_SIZE) === 0n ? `${best[0]}+${off / BigInt(PAGE_SIZE)}p` : `${best[0]}+${hex(off)}`;
}

/** Names of the set bits of a mask; unknown bits are shown as hex. */
export function maskNames(mask: bigint, names: readonly string[], sep = '|'): string {
  const out: string[] = [];
  names.forEach((n, bit) => {
    if (mask & (1n << BigInt(bit))) out.push(n);
  });
  const unknown = mask & ~((1n << BigInt(names.length)) - 1n);
  if (unknown) out.push(hex(unknown));
  return out.length ? out.join(sep) : '0';
}

/** The scan's arguments on one line; fields still at their defaults are left out. */
export function describeScan(arg: PmScanArg, names: Map<string, bigint>): string {
  const parts = [`start=${symbolic(arg.start, names)}`, `end=${symbolic(arg.end, names)}`];
  if (arg.flags) parts.push(`flags=${maskNames(arg.flags, FLAG_NAMES)}`);
  for (const f of ['category_inverted', 'category_mask', 'category_anyof_mask', 'return_mask'] as const) {
    if (arg[f] === BigInt(PM_SCAN_CATEGORIES)) parts.push(`${f}=ALL`);
    else if (arg[f] || f === 'return_mask') parts.push(`${f}=${maskNames(arg[f], CATEGORY_NAMES)}`);
  }
  parts.push(`vec_len=${arg.vec === 0n ? 'NULL/' : ''}${arg.vec_len}`);
  if (arg.max_pages) parts.push(`max_pages=${arg.max_pages}`);
  if (arg.size !== 96n) parts.push(`size=${arg.size}`);
  return parts.join(' ');
}

const UFFD_FEATURE_NAMES = Object.keys(UFFD_FEATURES);
const REGISTER_MODE_NAMES = Object.keys(UFFD_REGISTER_MODES);

/** prot bits as the scenario writes them: `none` or letters of rwx. */
export function protText(prot: number): string {
  const s = (prot & PROT_READ ? 'r' : '') + (prot & PROT_WRITE ? 'w' : '') + (prot & PROT_EXEC ? 'x' : '');
  return s || 'none';
}

/** One line for a non-scan step: its arguments, written as in a scenario. */
export function describeOp(op: Op, names: Map<string, bigint>): string {
  const parts: string[] = [];
  for (const [k, v] of Object.entries(op)) {
    if (k === 'op' || k === 'arg' || v === undefined) continue;
    let text: string;
    if (k === 'addr') text = symbolic(v as bigint, names);
    else if (k === 'size' || k === 'stride') text = sizeText(v as bigint);
    else if (k === 'prot') text = protText(v as number);
    else if (k === 'features') text = `[${maskNames(v as bigint, UFFD_FEATURE_NAMES, ', ')}]`;
    else if (k === 'mode') text = `[${maskNames(v as bigint, REGISTER_MODE_NAMES, ', ')}]`;
    else text = typeof v === 'bigint' ? String(v) : String(v);
    parts.push(`${k}=${text}`);
  }
  return parts.join(' ');
}

function sizeText(v: bigint): string {
  return v % BigInt(PAGE_SIZE) === 0n && v > 0n ? `${v / BigInt(PAGE_SIZE)}p` : String(v);
}

/** The regions of a scan result as an aligned table. */
export function regionTable(r: StepResult, program: Program, c: Chalk): string[] {
  const rows = (r.regions ?? []).map((g) => [
    hex(g.start),
    hex(g.end),
    String((g.end - g.start) / BigInt(PAGE_SIZE)),
    symbolic(g.start, program.names),
    categoryNames(g.categories).join('|') || '0',
  ]);
  if (rows.length === 0) return [];
  const head = ['start', 'end', 'pages', 'at', 'categories'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
  const line = (cells: string[]) =>
    cells.map((cell, i) => (i === 2 ? cell.padStart(widths[i]) : i === cells.length - 1 ? cell : cell.padEnd(widths[i]))).join('  ');
  return [c.dim(line(head)), ...rows.map((row) => line(row))];
}

/** A step the kernel never returns from: `hang: the kernel takes the same fault again for ever at m (0x...) (fault-loop)`. */
export function hangText(h: NonNullable<StepResult['hang']>, names: Map<string, bigint>): string {
  let at = '';
  if (h.address !== undefined) {
    const sym = symbolic(h.address, names);
    at = sym === hex(h.address) ? ` at ${sym}` : ` at ${sym} (${hex(h.address)})`;
  }
  return `hang: ${HANG_TEXT[h.why]}${at} (${h.why})`;
}

/** A step that blocked on userfaultfd: `blocked: userfaultfd PAGEFAULT at m+3p (0x...) flags WRITE|WP`. */
export function userfaultText(u: NonNullable<StepResult['userfault']>, names: Map<string, bigint>): string {
  const at = symbolic(u.address, names);
  const where = at === hex(u.address) ? at : `${at} (${hex(u.address)})`;
  return `blocked: userfaultfd PAGEFAULT at ${where} flags ${u.flags.join('|') || '0'}`;
}
