// The colour decision, made once per run and passed in: chalk does not honour NO_COLOR itself.

import chalk, { type Chalk } from 'chalk';

export interface ColorOptions {
  /** --no-color */
  color?: boolean;
  stream: NodeJS.WriteStream | { isTTY?: boolean };
  env: NodeJS.ProcessEnv;
}

/** 0 = none. NO_COLOR (any value), --no-color and TERM=dumb switch colour off; FORCE_COLOR on. */
export function colorLevel(o: ColorOptions): 0 | 1 | 2 | 3 {
  if (o.color === false) return 0;
  if (o.env.NO_COLOR !== undefined && o.env.NO_COLOR !== '') return 0;
  const force = o.env.FORCE_COLOR;
  if (force !== undefined && force !== '') {
    if (force === '0' || force === 'false') return 0;
    return force === '2' ? 2 : force === '3' ? 3 : 1;
  }
  if (!o.stream.isTTY || o.env.TERM === 'dumb') return 0;
  return 1;
}

export function makeChalk(level: 0 | 1 | 2 | 3): Chalk {
  return new chalk.Instance({ level });
}
