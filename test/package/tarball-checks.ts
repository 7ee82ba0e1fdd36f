/**
 * The checks tarball.test.ts runs on each host's reports: what the plugin host
 * application saw, the client's schemas, the type-checks, and the README's
 * table of over-long parameter answers.
 */
import { ObjectId } from 'mongodb'
import type { Test } from 'tap'
import { PHONE_NUMBER, readmeText, testStarted, type Host, type Ran } from './tarball-hosts.js'

export function exportTargets (value: unknown): string[] {
  if (typeof value === 'string') return [value]
  if (typeof value === 'object' && value !== null) return Object.values(value).flatMap(exportTargets)
  return []
}

export interface PackageAt { version: string, dir: string }
export interface PluginReport {
  host: Record<string, PackageAt | null>
  plugin: Record<string, PackageAt | null>
  ids?: { organizationId: string, userId: string }
  steps: Array<{ name: string, status: number, body: unknown }>
  holder: { userId: string, isObjectId: boolean } | null
  hostJwtKeys: string[]
  hostVerifies: boolean
  integrity?: { ok: boolean, scannedNumbers: number }
  error?: string
}
export interface ClientReport {
  installed: Record<string, boolean>
  typebox: { client: string | null, package: string | null }
  compiled?: { good: boolean, bad: boolean, errors: string[] }
  value?: { good: boolean, bad: boolean }
  operations: string[]
  openapi: string
  error?: string
}

export function timings (t: Test, host: Host): void {
  const runs = Object.entries(host.runs).map(([name, { ran }]) => `${name} ${ran.ms} ms`).join(', ')
  t.comment(`${host.kind} host: npm install ${host.installMs} ms (${host.packages} packages), node ${runs}, tsc ${host.typecheck.ms} ms; ${Math.round(performance.now() - testStarted)} ms since start`)
}

export function checkTypecheck (t: Test, host: Host): void {
  t.equal(host.typecheck.code, 0, `tsc (strict, exactOptionalPropertyTypes, noUncheckedIndexedAccess, NodeNext) reports no error in the ${host.kind} host${host.typecheck.code === 0 ? '' : `:\n${(host.typecheck.stdout + host.typecheck.stderr).slice(0, 6000)}`}`)
}

export function checkClientReport (t: Test, report: ClientReport): void {
  t.equal(report.error, undefined, 'the schemas load and compile with the client\'s TypeBox')
  t.ok(report.typebox.client !== null && report.typebox.client === report.typebox.package, 'one TypeBox: the package uses the client\'s copy (its TypeRegistry knows the contract\'s kinds)')
  t.same(report.compiled && { good: report.compiled.good, bad: report.compiled.bad }, { good: true, bad: false }, 'TypeCompiler accepts a good body and refuses a bad one')
  t.ok(report.compiled?.errors.some((message) => message.includes("Expected one of 'twilio', 'sinch', 'textgrid'")), 'and names the allowed providers')
  t.same(report.value, { good: true, bad: false }, 'Value.Check agrees')
  t.equal(report.openapi, '3.0.3')
  t.ok(report.operations.includes('post_organizations_phone_numbers'), 'operationRoutes lists the operations')
}

export async function checkPluginHost (t: Test, host: Host): Promise<void> {
  timings(t, host)
  const report = host.runs['plugin']?.report as unknown as PluginReport
  t.equal(report.error, undefined, 'the host application ran without an error')
  const stderr = host.runs['plugin']?.ran.stderr ?? ''
  t.notMatch(stderr, /DEPRECATED/, `registering the plugin prints no deprecation notice on the host's stderr${stderr === '' ? '' : `:\n${stderr.slice(0, 2000)}`}`)
  for (const name of ['fastify', 'mongodb', 'bson']) {
    t.ok(report.plugin[name] !== null && report.plugin[name]?.dir === report.host[name]?.dir, `the plugin resolves the host's own ${name} (${report.host[name]?.version ?? 'missing'})`)
  }
  t.equal(report.host['fastify']?.version, host.versions['fastify'], 'host fastify as installed')
  t.equal(report.host['mongodb']?.version, host.versions['mongodb'], 'host mongodb as installed')

  const steps = Object.fromEntries(report.steps.map((step) => [step.name, step]))
  t.match(steps['assign'], { status: 200, body: { success: true, assignment: { provider: 'twilio', phoneNumber: PHONE_NUMBER } } }, 'POST assigns the number (200)')
  t.match(steps['list'], { status: 200, body: { phoneNumbers: [{ userId: report.ids?.userId, provider: 'twilio', phoneNumber: PHONE_NUMBER }] } }, 'GET lists it')
  t.match(steps['no token'], { status: 401 }, 'a request without a token is refused')
  t.match(steps['list (useHostJwt)'], { status: 200, body: { phoneNumbers: [{ phoneNumber: PHONE_NUMBER }] } }, 'auth.useHostJwt verifies with the host\'s @fastify/jwt')
  t.same(report.holder, { userId: report.ids?.userId, isObjectId: true }, 'app.orgPhoneNumbers.findHolder returns the host\'s ObjectId')
  t.ok(report.hostJwtKeys.includes('orgPhoneNumbers') && report.hostVerifies, 'the host\'s app.jwt keeps working and gains the plugin\'s namespace')
  t.same(report.integrity, { ok: true, scannedNumbers: 1 }, 'fastify-org-phone-numbers/integrity resolves in the host, and its check sees the assigned number')

  // Read back through this test's own connection: the write really reached the database.
  const user = report.ids === undefined || host.db === undefined ? null : await host.db.collection('users').findOne({ _id: new ObjectId(report.ids.userId) })
  t.match(user?.['phoneNumbers'], [{ provider: 'twilio', phoneNumber: PHONE_NUMBER, isDefault: true, isInboundEnabled: true }], 'the assignment is stored on the user')

  checkClientReport(t, host.runs['client']?.report as unknown as ClientReport)
  checkTypecheck(t, host)
  checkOverlongParameter(t, host, steps)
}

export function output (ran: Ran | undefined): string {
  return ran === undefined ? 'not run' : (ran.stdout + ran.stderr).slice(0, 6000)
}

/** What the README's table says this host's Fastify answers to an over-long path parameter, against what it answered. */
export function checkOverlongParameter (t: Test, host: Host, steps: Record<string, { status: number } | undefined>): void {
  const minor = (host.versions['fastify'] ?? '').split('.').slice(0, 2).join('.')
  const row = new RegExp(`^\\| ${minor.replace('.', '\\.')} \\| (\\d{3})[^|]*\\| (\\d{3})`, 'm').exec(readmeText)
  t.ok(row !== null, `the README's table of over-long parameter answers has a row for Fastify ${minor}`)
  t.equal(steps['overlong parameter']?.status, Number(row?.[1]), `Fastify ${minor} alone answers as the README says (${row?.[1] ?? 'no row'})`)
  t.equal(steps['overlong parameter (replyToFrameworkError)']?.status, Number(row?.[2]), `with replyToFrameworkError, as the README says (${row?.[2] ?? 'no row'})`)
}
