// tap coverage map: which source files each test file's coverage counts for.
// Tests that start server processes (tsx, or compiled bench children) report
// those files from differently compiled code, and merging that with the
// in-process runs garbles the report. tap instruments every child process it
// sees (stripping the environment does not stop it), so those tests count
// only for what they test in their own process.
const ALL = ['plugins/**/*.ts', 'src/**/*.ts', 'server/**/*.ts', 'dev-database/**/*.ts', 'tools/**/*.ts', 'schemas/**/*.ts', 'scripts/**/*.ts', 'bench/**/*.ts']

const ONLY = {
  'test/server/bench-smoke.test.ts': ['bench/**/*.ts'],
  'test/server/server.test.ts': ['server/config.ts'],
  'test/server/tracing.test.ts': ['server/tracing/settings.ts'],
  'test/server/development-database.test.ts': ['server/config.ts', 'server/development-database.ts'],
  'test/server/standalone-contract.test.ts': null,
  'test/server/hardening-running-server.test.ts': null,
  'test/server/hardening-startup.test.ts': null,
  'test/server/ownership-rules.test.ts': null,
  'test/server/ownership-transfer.test.ts': null,
  'test/server/ownership-lookup.test.ts': null,
  'test/server/two-processes.test.ts': null,
  'test/server/docs-curl.test.ts': null,
  'test/tools/integrity-check.test.ts': ['src/domain/**/*.ts', 'tools/**/*.ts'],
  'test/tools/integrity-repair.test.ts': ['src/domain/**/*.ts', 'tools/**/*.ts'],
  'test/tools/integrity-cli.test.ts': ['src/domain/**/*.ts', 'tools/**/*.ts'],
  'test/server/docs-page.test.ts': ['server/docs.ts']
}

export default function coverageMap (testFile) {
  return testFile in ONLY ? ONLY[testFile] : ALL
}
