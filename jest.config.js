/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  // `npm test` type-checks with tsc first, so ts-jest only transpiles.
  transform: { '^.+\\.ts$': ['ts-jest', {}] },
  reporters: ['default', '<rootDir>/test/support/summary-reporter.js'],
  testTimeout: 600000,
};
