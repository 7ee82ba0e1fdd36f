/**
 * The package as its users get it: `npm pack` (prepack builds), then the
 * tarball installed with npm into temporary projects outside the repository,
 * so nothing resolves from the repository's own node_modules:
 *
 * - current: the host's fastify, mongodb and @fastify/jwt at the versions this
 *   repository develops with;
 * - lowest: the floors package.json claims (fastify and mongodb peers, and each
 *   shared dependency pinned by the host at our floor so npm dedupes our copy
 *   to it), with @fastify/jwt 9 of its own, an older major than ours, so the
 *   plugin runs its own copy beside the host's;
 * - client: only the tarball, TypeBox and openapi-fetch, no fastify, no mongodb.
 *
 * Plugin hosts run fixtures/plugin-host.mjs with plain node (the host's own
 * fastify, mongodb and a MongoClient of its own on this run's test server) and
 * type-check fixtures/plugin-host.ts.tmpl against the installed .d.ts files
 * with strict settings and the repository's TypeScript. The client runs
 * fixtures/client.mjs and type-checks fixtures/client.ts.tmpl.
 *
 * Also, from the host trial of 2026-12-03: the current host runs the README's
 * `npx openapi-typescript …` command and type-checks a client on its output
 * (fixtures/readme-types.ts.tmpl: the same `paths` as the package's), and
 * documents two registrations (/v1, /v2) in one @fastify/swagger document
 * (fixtures/swagger-host.mjs) whose openapi-typescript output must type-check;
 * both plugin hosts answer an over-long path parameter as the README's table
 * says for their Fastify; the client host type-checks the /schemas entry under
 * moduleResolution node10 (fixtures/node10.ts.tmpl) and measures what its
 * install costs against the README's figures.
 *
 * Cost (2 cores): ~30 s. One build and one pack (~5 s), then the three hosts
 * in parallel: install (~3-8 s), runs (~2-5 s), type-checks (~5 s alone,
 * ~15 s when all three run at once). Installs come from npm's own cache
 * (--prefer-offline): only the first run ever downloads the lowest host's
 * versions. The hosts' node_modules are not cached between runs: that would
 * save only the install, and the hosts must stay outside the repository (a
 * package missing from a host would otherwise resolve from the repository's
 * node_modules). The file runs on both backends like the rest of the suite:
 * the lowest host's mongodb 6.0 driver meets each backend nowhere else.
 * KEEP_PACKAGE_HOSTS=1 keeps the temporary projects for a look.
 */
import { readdir } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { checkClientReport, checkPluginHost, checkTypecheck, exportTargets, output, timings, type ClientReport, type PluginReport } from './tarball-checks.js'
import { CLIENT, CURRENT, FLOORS, HOST_OLD_JWT, LOWEST, floorOf, manifest, readmeSnippets, readmeTypesCommand, readmeText, startPackageHosts } from './tarball-hosts.js'

// ~30 s measured (above) before the types and swagger checks; 240 s ran out on a
// 2-core machine at load 10 with them (pack alone took 35 s), hence generous.
t.setTimeout(480_000)

const { packed, hosts } = startPackageHosts(t)

t.test('the tarball ships the plugin, the domain, the integrity check, the schemas and the contract, nothing else', async (t) => {
  const { files, dryRunFiles, size, unpackedSize, packMs, dryRunMs } = await packed
  const paths = files.map((file) => file.path).sort()
  t.comment(`npm pack (prepack build included): ${packMs} ms; npm pack --dry-run: ${dryRunMs} ms; ${paths.length} files, ${size} bytes packed, ${unpackedSize} unpacked`)
  t.same(dryRunFiles, paths, 'npm pack --dry-run lists the same files as the real pack')

  const allowed = /^(dist\/(plugins|src\/domain|tools\/integrity|schemas)\/[\w/-]+\.(js|d\.ts)|schemas\/openapi\.yaml|package\.json|README\.md|LICENSE)$/
  t.same(paths.filter((path) => !allowed.test(path)), [], 'only dist/plugins, dist/src/domain, dist/tools/integrity, dist/schemas, schemas/openapi.yaml, package.json and README')
  const unwanted = /embedded-mongo|dev-database|java|pom\.xml|(^|\/)bench\/|(^|\/)scripts\/|(^|\/)server\/|standalone|tokens|\.map$|(^|\/)test\//i
  t.same(paths.filter((path) => unwanted.test(path)), [], 'no development database, Java, bench, scripts, server, token signer, test or source-map files')

  const targets = [...exportTargets(manifest.exports), manifest.main, manifest.types].map((target) => target.replace(/^\.\//, ''))
  for (const target of new Set(targets)) t.ok(paths.includes(target), `${target} is in the tarball`)
  for (const required of ['dist/plugins/phone-numbers/index.d.ts', 'dist/schemas/index.d.ts', 'dist/src/domain/store.d.ts']) {
    t.ok(paths.includes(required), `${required} is in the tarball`)
  }
})

t.test('package.json: the host provides fastify and mongodb (optional peers), development pins them exactly', async (t) => {
  t.same(Object.keys(manifest.peerDependencies).sort(), ['fastify', 'mongodb'])
  for (const name of ['fastify', 'mongodb']) {
    t.equal(manifest.dependencies[name], undefined, `${name} is not a dependency`)
    t.equal(manifest.peerDependenciesMeta[name]?.optional, true, `${name} is an optional peer (a schemas-only client installs neither)`)
    t.match(manifest.devDependencies[name], /^\d+\.\d+\.\d+$/, `${name} is pinned exactly for development`)
  }
  for (const [name, range] of Object.entries(manifest.dependencies)) t.match(range, /^\^\d/, `${name} is a caret range (${range}), so it dedupes with the host's copy`)
  t.equal(manifest.dependencies['@fastify/mongodb'], undefined, '@fastify/mongodb belongs to the standalone server only')
  for (const [name, floor] of Object.entries(FLOORS)) {
    const range = manifest.peerDependencies[name] ?? manifest.dependencies[name] ?? ''
    t.equal(floorOf(range), floor, `${name} "${range}": its floor is the version the lowest host runs`)
  }
  t.equal(floorOf(manifest.dependencies['@fastify/jwt'] ?? ''), CURRENT['@fastify/jwt'], '@fastify/jwt: its floor is the version the current host runs (the lowest host runs the newest of that major, beside its own 9.x)')
})
t.test(`current host: fastify ${CURRENT['fastify'] ?? ''}, mongodb ${CURRENT['mongodb'] ?? ''}, @fastify/jwt ${CURRENT['@fastify/jwt'] ?? ''}`, async (t) => {
  const host = await hosts.current
  await checkPluginHost(t, host)
  const report = host.runs['plugin']?.report as unknown as PluginReport
  t.equal(report.plugin['@fastify/jwt']?.dir, report.host['@fastify/jwt']?.dir, 'one @fastify/jwt, shared with the host')
  t.ok(readmeSnippets.length >= 5, `the README's TypeScript examples were found (${readmeSnippets.length})`)
  t.equal(host.readme?.code, 0, `every \`\`\`ts block of the README type-checks against the installed package (strict, exactOptionalPropertyTypes)${host.readme?.code === 0 ? '' : `:\n${((host.readme?.stdout ?? '') + (host.readme?.stderr ?? '')).slice(0, 6000)}`}`)

  // The README's own types command gives the package's `paths`, defaults optional.
  t.ok(readmeTypesCommand !== undefined, `the README's types command was found: ${readmeTypesCommand ?? 'none'}`)
  t.equal(host.extra['readme types command']?.code, 0, `\`${readmeTypesCommand ?? ''}\` runs in the host${host.extra['readme types command']?.code === 0 ? '' : `:\n${output(host.extra['readme types command'])}`}`)
  t.equal(host.extra['readme types client']?.code, 0, `its paths are the package's and a client leaving out isDefault/isInboundEnabled type-checks${host.extra['readme types client']?.code === 0 ? '' : `:\n${output(host.extra['readme types client'])}`}`)

  // Two registrations (/v1, /v2) in one swagger document, each with its operationIdPrefix.
  const swagger = host.runs['swagger']?.report as { operations?: number, distinct?: number, error?: string } | undefined
  t.same(swagger, { operations: 14, distinct: 14 }, 'the swagger document has 14 operations (7 in each registration) and 14 distinct operationIds')
  t.equal(host.extra['swagger types']?.code, 0, `openapi-typescript reads that document${host.extra['swagger types']?.code === 0 ? '' : `:\n${output(host.extra['swagger types'])}`}`)
  t.equal(host.extra['swagger types tsc']?.code, 0, `and its output type-checks (no TS2300 duplicate identifier)${host.extra['swagger types tsc']?.code === 0 ? '' : `:\n${output(host.extra['swagger types tsc'])}`}`)
})

t.test(`lowest host: ${Object.entries(LOWEST).filter(([name]) => name !== '@types/node').map(([name, version]) => `${name} ${version}`).join(', ')}`, async (t) => {
  const host = await hosts.lowest
  await checkPluginHost(t, host)
  const report = host.runs['plugin']?.report as unknown as PluginReport
  for (const name of ['@fastify/error', 'ajv', '@sinclair/typebox', 'fastify-plugin']) {
    t.equal(report.plugin[name]?.dir, report.host[name]?.dir, `the plugin runs on the host's ${name} ${report.host[name]?.version ?? 'missing'} (our floor)`)
    t.equal(report.plugin[name]?.version, FLOORS[name], `${name} is the claimed floor`)
  }
  t.equal(report.host['@fastify/jwt']?.version, HOST_OLD_JWT, `the host has its own @fastify/jwt ${HOST_OLD_JWT}`)
  t.not(report.plugin['@fastify/jwt']?.dir, report.host['@fastify/jwt']?.dir, 'the plugin has its own @fastify/jwt beside it, and both work (above)')
  t.equal(report.plugin['@fastify/jwt']?.version.split('.')[0], floorOf(manifest.dependencies['@fastify/jwt'] ?? '').split('.')[0], 'of the major package.json asks for')
})

t.test(`client host: only the tarball, @sinclair/typebox ${CLIENT['@sinclair/typebox'] ?? ''} and openapi-fetch ${CLIENT['openapi-fetch'] ?? ''}`, async (t) => {
  const host = await hosts.client
  timings(t, host)
  const report = host.runs['client']?.report as unknown as ClientReport
  t.same(report.installed, { ...report.installed, fastify: false, mongodb: false }, 'npm installed neither fastify nor mongodb (optional peers)')
  const top = (await readdir(join(host.dir, 'node_modules'))).filter((name) => !name.startsWith('.'))
  t.comment(`client node_modules: ${host.packages} packages; top level: ${top.join(' ')}`)
  checkClientReport(t, report)
  checkTypecheck(t, host)
  t.equal(host.extra['node10']?.code, 0, `fastify-org-phone-numbers/schemas type-checks under moduleResolution node10 (typesVersions)${host.extra['node10']?.code === 0 ? '' : `:\n${output(host.extra['node10'])}`}`)

  // What a clients-only install costs, as the README states it (within 25%: the dependencies' own releases move it).
  const cost = host.cost
  const mb = (bytes: number): string => (bytes / 1e6).toFixed(1)
  t.comment(`client install: ${cost?.packages ?? 0} packages, ${mb(cost?.bytes ?? 0)} MB; the plugin's server-side dependencies (${cost?.serverSide.names.join(', ') ?? ''}): ${cost?.serverSide.packages ?? 0} packages, ${mb(cost?.serverSide.bytes ?? 0)} MB`)
  t.same(cost?.serverSide.names, ['@fastify/error', '@fastify/jwt', 'ajv', 'fastify-plugin', 'lru-cache'], 'the server-side dependencies a client install pulls in')
  const stated = /clients-only install is (\d+) packages, ([\d.]+) MB on disk, of which (\d+) packages, ([\d.]+) MB/.exec(readmeText.replace(/\s+/g, ' '))
  t.ok(stated !== null, 'the README states what a clients-only install costs')
  const near = (measured: number, claimed: number): boolean => Math.abs(measured - claimed) <= 0.25 * claimed
  t.ok(near(cost?.packages ?? 0, Number(stated?.[1])), `packages: measured ${cost?.packages ?? 0}, README ${stated?.[1] ?? 'none'}`)
  t.ok(near((cost?.bytes ?? 0) / 1e6, Number(stated?.[2])), `MB: measured ${mb(cost?.bytes ?? 0)}, README ${stated?.[2] ?? 'none'}`)
  t.ok(near(cost?.serverSide.packages ?? 0, Number(stated?.[3])), `server-side packages: measured ${cost?.serverSide.packages ?? 0}, README ${stated?.[3] ?? 'none'}`)
  t.ok(near((cost?.serverSide.bytes ?? 0) / 1e6, Number(stated?.[4])), `server-side MB: measured ${mb(cost?.serverSide.bytes ?? 0)}, README ${stated?.[4] ?? 'none'}`)
})
