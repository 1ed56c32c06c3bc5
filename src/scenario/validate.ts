// Structural validation of the plain value against the schemas: the top level, then each step
// (its one op key, its keys, `may_fail`, `expect`). All problems are collected; the caller reports
// the earliest in the file. Mapping names are not looked at here (resolve.ts does that, in order).

import type { z } from 'zod';
import type { OpName } from './program';
import type { Path } from './parse';
import { DEFAULT_KERNEL, pageSizeOf } from './profiles';
import {
  STEP_KEYS,
  isOpName,
  issuesToProblems,
  mayFailSchema,
  opSchemas,
  stepExpectSchema,
  scanExpectSchema,
  topSchema,
  type OpSchemas,
  type Problem,
  type RawOp,
} from './schema';
import { describe } from './values';
import { VALID_OPS_TEXT } from './located';

/** One step after validation; `body` still holds address expressions. */
export type RawStep = {
  [K in OpName]: {
    op: K;
    body: RawOp<K>;
    mayFail: boolean;
    expect?: z.output<ReturnType<typeof scanExpectSchema>> | z.output<ReturnType<typeof stepExpectSchema>>;
  };
}[OpName];

export interface RawScenario {
  top: z.output<typeof topSchema>;
  kernel: string;
  pageSize: bigint;
  steps: RawStep[];
}

export type Validated = { ok: true; scenario: RawScenario } | { ok: false; problems: Problem[] };

export function validate(root: unknown): Validated {
  const problems: Problem[] = [];
  const check = <S extends z.ZodType>(schema: S, raw: unknown, prefix: Path): z.output<S> | undefined => {
    const r = schema.safeParse(raw);
    if (r.success) return r.data;
    problems.push(...issuesToProblems(r.error.issues, prefix, root));
    return undefined;
  };

  const top = check(topSchema, root, []);
  // Steps are checked even when the top level has problems, so the earliest one can be reported.
  const rawTop = root as Record<string, unknown>;
  const kernel = typeof rawTop.kernel === 'string' && pageSizeOf(rawTop.kernel) ? rawTop.kernel : DEFAULT_KERNEL;
  const pageSize = pageSizeOf(kernel)!;
  const ops = opSchemas(pageSize);
  const scanExpect = scanExpectSchema(pageSize);
  const otherExpect = stepExpectSchema(pageSize);

  const steps: RawStep[] = [];
  const rawSteps = Array.isArray(rawTop.steps) ? rawTop.steps : [];
  rawSteps.forEach((raw, i) => {
    const path = ['steps', i];
    if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
      problems.push({ path, detail: `expected a step like \`- mmap: {...}\`, got ${describe(raw)}` });
      return;
    }
    const step = raw as Record<string, unknown>;
    const keys = Object.keys(step);
    const opKeys = keys.filter(isOpName);
    for (const k of keys)
      if (!isOpName(k) && !(STEP_KEYS as readonly string[]).includes(k))
        problems.push({ path: [...path, k], key: true, detail: `unknown op ${describe(k)}; ${VALID_OPS_TEXT}` });
    if (opKeys.length === 0) {
      if (keys.every((k) => (STEP_KEYS as readonly string[]).includes(k)))
        problems.push({ path, detail: `a step without an op; ${VALID_OPS_TEXT}` });
      return;
    }
    if (opKeys.length > 1) {
      problems.push({
        path: [...path, opKeys[1]],
        key: true,
        detail: `a second op in one step (after ${opKeys[0]}); write one op per step`,
      });
      return;
    }
    const op = opKeys[0];
    const body = check(ops[op] as OpSchemas[OpName], step[op], [...path, op]);
    const mayFail = step.may_fail === undefined ? false : check(mayFailSchema, step.may_fail, [...path, 'may_fail']);
    const expect =
      step.expect === undefined
        ? undefined
        : check(op === 'pagemap_scan' ? scanExpect : otherExpect, step.expect, [...path, 'expect']);
    if (body === undefined || mayFail === undefined || (step.expect !== undefined && expect === undefined)) return;
    steps.push({ op, body, mayFail, expect } as RawStep);
  });

  if (problems.length > 0 || top === undefined) return { ok: false, problems };
  return { ok: true, scenario: { top, kernel, pageSize, steps } };
}
