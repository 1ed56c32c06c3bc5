#!/usr/bin/env node
'use strict';
// The CLI runs the compiled JavaScript in dist/ (built by `npm install` via the prepare script).
require('../dist/cli/main.js').main(process.argv).then((code) => {
  process.exitCode = code;
});
