// A neutral description of page-table state, run by run, for tests that compare the engine
// with an independent model and for debugging: "hole", "none", or the entry kind and its flags
// ("present|wp", "zero", "marker", "guard|wp", "thp|zero", ...).

import { PMD_SIZE } from '../uapi';
import type { MmStruct } from './mm';
import {
  isTable,
  pteKind,
  PTE_FILE,
  PTE_LARGE_FOLIO,
  PTE_MARKER_GUARD,
  PTE_MARKER_POISONED,
  PTE_MARKER_UFFD_WP,
  PTE_PRESENT,
  PTE_SOFT_DIRTY,
  PTE_SWAP,
  PTE_UFFD_WP,
  PTE_ZERO,
} from './pte';

export interface StateRun {
  start: number;
  end: number;
  state: string;
}

const KINDS: Record<number, string> = {
  [PTE_PRESENT]: 'present',
  [PTE_SWAP]: 'swap',
  [PTE_MARKER_UFFD_WP]: 'marker',
  [PTE_MARKER_GUARD]: 'guard',
  [PTE_MARKER_POISONED]: 'poison',
};

/** An entry as words: its kind, then wp, zero, file, softdirty when set. */
export function describeEntry(entry: number, kind: string): string {
  const words = [kind];
  if (entry & PTE_ZERO) words[0] = kind === 'present' ? 'zero' : `${kind}|zero`;
  if (entry & PTE_UFFD_WP) words.push('wp');
  if (entry & PTE_FILE) words.push('file');
  if (entry & PTE_SOFT_DIRTY) words.push('softdirty');
  if (entry & PTE_LARGE_FOLIO) words.push('large');
  return words.join('|');
}

/** The state of every page of [start, end), as maximal runs of equal description. */
export function dumpPages(mm: MmStruct, start: number, end: number): StateRun[] {
  const out: StateRun[] = [];
  const push = (s: number, e: number, state: string) => {
    const last = out[out.length - 1];
    if (last && last.end === s && last.state === state) last.end = e;
    else out.push({ start: s, end: e, state });
  };
  for (const seg of mm.pmd.map.segments(mm.pmd.index(start), Math.ceil(end / PMD_SIZE))) {
    const s = Math.max(start, seg.start * PMD_SIZE);
    const e = Math.min(end, seg.end * PMD_SIZE);
    if (seg.value === undefined) push(s, e, 'hole');
    else if (!isTable(seg.value)) push(s, e, describeEntry(seg.value, 'thp'));
    else {
      for (const p of mm.pte.map.segments(mm.pte.index(s), mm.pte.index(e))) {
        push(p.start * 4096, p.end * 4096, p.value === undefined ? 'none' : describeEntry(p.value, KINDS[pteKind(p.value)]));
      }
    }
  }
  return out;
}
