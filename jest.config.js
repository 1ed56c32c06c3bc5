/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  // `npm test` type-checks with tsc first, so ts-jest only transpiles.
  transform: { '^.+\\.ts$': ['ts-jest', {}] },
  reporters: ['default', '<rootDir>/test/support/summary-reporter.js'],
  testTimeout: 600000,
  // Suites that run on the kernel change machine-wide state for a while (swap, hugetlb pools,
  // THP mode): one suite at a time, so that none sees another's set-up.
  maxWorkers: 1,
};
