// tap coverage map: which source files each test file's coverage counts for.
// Tests that start server processes (tsx, or compiled bench children) report
// those files from differently compiled code, and merging that with the
// in-process runs garbles the report. tap instruments every child process it
// sees (stripping the environment does not stop it), so those tests count
// only for what they test in their own process.
const ALL = ['plugins/**/*.ts', 'src/**/*.ts', 'schemas/**/*.ts', 'scripts/**/*.ts', 'bench/**/*.ts']

const ONLY = {
  'test/standalone/bench-smoke.test.ts': ['bench/**/*.ts'],
  'test/standalone/server.test.ts': ['src/standalone/config.ts'],
  'test/standalone/tracing.test.ts': ['src/standalone/tracing/settings.ts'],
  'test/standalone/development-database.test.ts': ['src/standalone/config.ts', 'src/standalone/development-database.ts'],
  'test/reliability/standalone-contract.test.ts': null,
  'test/reliability/hardening.test.ts': null,
  'test/standalone/ownership-rules.test.ts': null,
  'test/standalone/ownership-transfer.test.ts': null,
  'test/standalone/ownership-lookup.test.ts': null,
  'test/standalone/two-processes.test.ts': null,
  'test/domain/integrity.test.ts': ['src/domain/**/*.ts'],
  'test/standalone/docs-page.test.ts': ['src/standalone/docs.ts']
}

export default function coverageMap (testFile) {
  return testFile in ONLY ? ONLY[testFile] : ALL
}
