// Problems (a path into the scenario + a message) → InputError `file:line:col: path: detail`.
// Paths are shown the way users read them: `mmap.size`, `pagemap_scan.expect.regions[0][1]`,
// `system.thp`, or `step 3` for a step as a whole.

import { InputError } from '../errors';
import type { Path, Source } from './parse';
import { OP_NAMES, STEP_KEYS, isOpName, type Problem } from './schema';

/** The op key of step `index` of the plain value, if it has one. */
function opOfStep(root: unknown, index: number): string | undefined {
  const steps = (root as { steps?: unknown } | null)?.steps;
  const step = Array.isArray(steps) ? steps[index] : undefined;
  if (step === null || typeof step !== 'object' || Array.isArray(step)) return undefined;
  return Object.keys(step).find(isOpName);
}

/**
 * A key as it can be shown: printable ASCII as it is, anything else quoted with escapes, so that
 * a quoted YAML key like "a\nb" or "\e[31m" cannot break the one-line message or drive the terminal.
 */
function showKey(k: string): string {
  if (/^[\x21-\x7e]+$/.test(k) && !/[.[\]"]/.test(k)) return k;
  const escaped = k.replace(/[^\x20-\x7e]|["\\]/g, (c) =>
    c === '"' || c === '\\' ? `\\${c}` : `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
  return `["${escaped}"]`;
}

function join(path: Path): string {
  return path
    .map((k, i) => {
      if (typeof k === 'number') return `[${k}]`;
      const shown = showKey(k);
      return i === 0 || shown.startsWith('[') ? shown : `.${shown}`;
    })
    .join('');
}

export function renderPath(path: Path, root: unknown): string | undefined {
  if (path.length === 0) return undefined;
  if (path[0] !== 'steps' || typeof path[1] !== 'number') return join(path);
  const op = opOfStep(root, path[1]);
  const key = path[2];
  if (op === undefined || key === undefined) return `step ${path[1] + 1}`;
  if (key === op) return join([op, ...path.slice(3)]);
  if ((STEP_KEYS as readonly (string | number)[]).includes(key)) return join([op, ...path.slice(2)]);
  return `step ${path[1] + 1}`;
}

export function problemError(src: Source, p: Problem): InputError {
  return new InputError(src.where(p.path, p.key), renderPath(p.path, src.value), p.detail);
}

/** The problem that comes first in the file (ties: the first reported). */
export function firstProblem(src: Source, problems: readonly Problem[]): InputError {
  let best = problems[0];
  let bestOffset = src.offset(best.path, best.key);
  for (const p of problems.slice(1)) {
    const o = src.offset(p.path, p.key);
    if (o < bestOffset) [best, bestOffset] = [p, o];
  }
  return problemError(src, best);
}

export const VALID_OPS_TEXT = `valid ops: ${OP_NAMES.join(', ')}; a step may also have ${STEP_KEYS.join(', ')}`;
