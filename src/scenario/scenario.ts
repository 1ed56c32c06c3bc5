// parseScenario: YAML text → Program, or an InputError located at the offending node.
// Pipeline: parse.ts (YAML, limits, locations) → validate.ts (zod schemas) → resolve.ts (names).

import type { InputError } from '../errors';
import { parseYaml } from './parse';
import { firstProblem, problemError } from './located';
import type { Program } from './program';
import { ResolveProblem, resolve } from './resolve';
import { validate } from './validate';

/** Parse a scenario. `file` is used in messages and for the default `name`. */
export function parseScenario(text: string, file: string): Program {
  const src = parseYaml(text, file);
  const checked = validate(src.value);
  if (!checked.ok) throw firstProblem(src, checked.problems) satisfies InputError;
  try {
    return resolve(src, checked.scenario, file);
  } catch (e) {
    if (e instanceof ResolveProblem) throw problemError(src, e.problem);
    throw e;
  }
}
