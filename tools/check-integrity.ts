/**
 * npm run check-integrity [-- [--repair] [--json]]
 *
 * Checks the stored data against the ownership and routing rules (see
 * tools/integrity/integrity.ts): numbers held in two organizations, numbers with
 * two inbound routes, malformed entries and fields, claims the users do not
 * back. `--repair` lets the store repair the stale claims it can prove
 * settled (`repairClaim`); user documents change only when it finishes or
 * undoes a transfer left unfinished, and the rule violations in them are
 * reported, never fixed (which holder keeps a number is a business
 * decision). `--json` prints the report as JSON.
 *
 * Environment: MONGODB_URI (required), MONGODB_DATABASE (default `tether`,
 * used when the URI names no database), USERS_COLLECTION,
 * ORGANIZATIONS_COLLECTION, PHONE_NUMBERS_FIELD, CLAIMS_COLLECTION,
 * CLAIM_LEASE_MS.
 *
 * Exit code: 0 nothing found, 1 something found, 2 usage or connection error.
 */
import { MongoClient } from 'mongodb'
import { checkIntegrity, type HolderReport, type IntegrityReport } from './integrity/index.js'
import { createPhoneNumberStore, DEFAULT_STORE_OPTIONS, isValidName } from '../src/domain/store.js'
import { databaseNameOf } from './database-uri.js'

const USAGE = `usage: npm run check-integrity [-- [--repair] [--json]]
  MONGODB_URI               required: the connection string of the database to check
  MONGODB_DATABASE          database when the URI names none (default tether)
  USERS_COLLECTION          default ${DEFAULT_STORE_OPTIONS.usersCollection}
  ORGANIZATIONS_COLLECTION  default ${DEFAULT_STORE_OPTIONS.organizationsCollection}
  PHONE_NUMBERS_FIELD       default ${DEFAULT_STORE_OPTIONS.phoneNumbersField}
  CLAIMS_COLLECTION         default ${DEFAULT_STORE_OPTIONS.claimsCollection}
  IN_FLIGHT_GRACE_MS        default ${DEFAULT_STORE_OPTIONS.inFlightGraceMs}
  --repair   let the store repair the stale claims it can prove settled (user documents change only
             to finish or undo a transfer left unfinished)
  --json     print the report as JSON
exit code: 0 nothing found, 1 something found, 2 usage or connection error`

/** Lines shown per section; the rest is counted. */
const LINES_PER_SECTION = 20

class UsageError extends Error {}

interface Settings {
  uri: string
  database: string
  usersCollection: string
  organizationsCollection: string
  phoneNumbersField: string
  claimsCollection: string
  inFlightGraceMs: number
  repair: boolean
  json: boolean
}

function readSettings (argv: readonly string[], env: NodeJS.ProcessEnv): Settings {
  let repair = false
  let json = false
  for (const argument of argv) {
    if (argument === '--repair') repair = true
    else if (argument === '--json') json = true
    else if (argument === '--help' || argument === '-h') throw new UsageError('')
    else throw new UsageError(`unknown argument ${JSON.stringify(argument)}`)
  }
  const problems: string[] = []
  const text = (name: string): string | undefined => {
    const value = env[name]
    return value === undefined || value.trim() === '' ? undefined : value
  }
  const name = (variable: string, fallback: string): string => {
    const value = text(variable) ?? fallback
    if (!isValidName(value)) problems.push(`${variable}=${value} must not contain '$', '.' or NUL`)
    return value
  }

  const uri = text('MONGODB_URI')
  let database = text('MONGODB_DATABASE') ?? 'tether'
  if (uri === undefined) {
    problems.push('MONGODB_URI is required: the connection string of the database to check (e.g. mongodb://127.0.0.1:27017/tether)')
  } else if (!/^mongodb(\+srv)?:\/\//.test(uri)) {
    problems.push('MONGODB_URI must start with mongodb:// or mongodb+srv://')
  } else {
    try {
      database = databaseNameOf(uri) ?? database
    } catch {
      problems.push('MONGODB_URI has a broken %-escape in its database name')
    }
  }
  const rawGrace = text('IN_FLIGHT_GRACE_MS')
  let inFlightGraceMs: number = DEFAULT_STORE_OPTIONS.inFlightGraceMs
  if (rawGrace !== undefined) {
    if (/^\d{1,10}$/.test(rawGrace) && Number(rawGrace) >= 1) inFlightGraceMs = Number(rawGrace)
    else problems.push(`IN_FLIGHT_GRACE_MS=${rawGrace} must be a whole number of milliseconds (1 or more)`)
  }
  const settings: Settings = {
    uri: uri ?? '',
    database,
    usersCollection: name('USERS_COLLECTION', DEFAULT_STORE_OPTIONS.usersCollection),
    organizationsCollection: name('ORGANIZATIONS_COLLECTION', DEFAULT_STORE_OPTIONS.organizationsCollection),
    phoneNumbersField: name('PHONE_NUMBERS_FIELD', DEFAULT_STORE_OPTIONS.phoneNumbersField),
    claimsCollection: name('CLAIMS_COLLECTION', DEFAULT_STORE_OPTIONS.claimsCollection),
    inFlightGraceMs,
    repair,
    json
  }
  if (problems.length > 0) throw new UsageError(problems.join('\n'))
  return settings
}

function plural (count: number, noun: string): string {
  if (count === 1) return `${count} ${noun}`
  return `${count} ${noun.endsWith('y') ? `${noun.slice(0, -1)}ies` : `${noun}s`}`
}

function holder (h: HolderReport): string {
  return `user ${h.userId ?? '(no _id)'} (org ${h.organizationId ?? '(none)'}, ${h.provider}${h.isInboundEnabled ? ', inbound' : ''})`
}

function duration (ms: number | null): string {
  if (ms === null) return 'at an unknown time'
  const seconds = Math.round(ms / 1000)
  if (seconds < 120) return `${seconds}s ago`
  const minutes = Math.round(seconds / 60)
  if (minutes < 120) return `${minutes} min ago`
  const hours = Math.round(minutes / 60)
  return hours < 48 ? `${hours} h ago` : `${Math.round(hours / 24)} days ago`
}

const STALE_REASONS: Record<string, string> = {
  'no-holder': 'no user holds it',
  'other-organization': 'no user of the claim\'s organization holds it',
  'route-not-backed': 'its inbound route is not an inbound-enabled assignment',
  'pending-transfer': 'a transfer was left unfinished'
}

function section<Item> (lines: string[], title: string, items: readonly Item[], line: (item: Item) => string): void {
  lines.push(`${title}: ${items.length}`)
  for (const item of items.slice(0, LINES_PER_SECTION)) lines.push(`  ${line(item)}`)
  if (items.length > LINES_PER_SECTION) lines.push(`  ... and ${items.length - LINES_PER_SECTION} more (--json lists them all)`)
}

function humanReport (report: IntegrityReport): string {
  const lines: string[] = []
  const field = report.phoneNumbersField
  lines.push(`Integrity check of database ${JSON.stringify(report.database)} at ${report.checkedAt}`)
  lines.push(`Scanned ${report.scanned.users} users with a ${field} field (${report.usersCollection}), ${report.scanned.numbers} numbers, ${report.scanned.claims} claims (${report.claimsCollection}).`)
  lines.push('')
  section(lines, 'Numbers held in two organizations', report.numbersInTwoOrganizations,
    (v) => `${v.phoneNumber}: ${v.holders.map(holder).join('; ')}`)
  section(lines, 'Numbers with more than one inbound route', report.doubleInboundRoutes,
    (v) => `${v.phoneNumber}: ${v.holders.map(holder).join('; ')}`)
  section(lines, 'Malformed entries', report.malformedEntries,
    (m) => `user ${m.userId ?? '(no _id)'} ${field}[${m.index}]: ${m.reason}`)
  section(lines, `Malformed ${field} fields`, report.malformedFields,
    (m) => `user ${m.userId ?? '(no _id)'}: ${m.reason}`)
  section(lines, report.repaired ? 'Stale claims left after repair' : 'Stale claims', report.staleClaims, (claim) => {
    const reasons = claim.reasons.map((reason) => STALE_REASONS[reason] ?? reason).join('; ')
    const transfer = claim.transfer === undefined
      ? ''
      : ` [transfer ${claim.transfer.provider} ${claim.transfer.fromUserId ?? '?'} -> ${claim.transfer.toUserId ?? '?'}, ${claim.transfer.committed ? 'committed' : 'not committed'}, begun ${duration(claim.transfer.ageMs)}]`
    const inFlight = claim.inFlight ? ', a write may be in flight' : ''
    const step = claim.writtenBy === null ? 'no step recorded' : `last step ${duration(claim.ageMs)} by ${claim.writtenBy}`
    return `${claim.phoneNumber}: ${reasons}${transfer} (claim of org ${claim.organizationId ?? '(none)'}, ${step}${inFlight})`
  })
  if (report.repaired) {
    section(lines, 'Repairs', report.repairs, (r) =>
      `${r.phoneNumber}: transfer ${r.transfer}, claim ${r.claim}${r.fixed ? ' (fixed)' : ' (still stale)'}`)
  }
  lines.push('')
  const userProblems = report.numbersInTwoOrganizations.length + report.doubleInboundRoutes.length +
    report.malformedEntries.length + report.malformedFields.length
  if (report.repaired) {
    const fixed = report.repairs.filter((r) => r.fixed).length
    const transfers = report.repairs.filter((r) => r.transfer === 'rolled-back' || r.transfer === 'rolled-forward').length
    lines.push(`Repair: ${fixed} of ${report.repairs.length} stale claims fixed. ` + (transfers === 0
      ? 'No user document was changed.'
      : `User documents were changed only to finish or undo ${plural(transfers, 'unfinished transfer')}: each lost the extra copy of the number the transfer had left.`))
    if (userProblems > 0) lines.push('The problems in user documents above were left as they are: which holder keeps a number is a business decision.')
  } else if (report.staleClaims.length > 0) {
    lines.push('Run with --repair to let the store repair the stale claims it can prove settled (user documents change only to finish or undo a transfer left unfinished).')
  }
  const counts = [
    [report.numbersInTwoOrganizations.length, 'number', 'in two organizations'],
    [report.doubleInboundRoutes.length, 'number', 'with two inbound routes'],
    [report.malformedEntries.length, 'malformed entry', ''],
    [report.malformedFields.length, 'malformed field', ''],
    [report.staleClaims.length, 'stale claim', '']
  ] as const
  const total = counts.reduce((sum, [count]) => sum + count, 0)
  lines.push(report.ok
    ? 'OK: no problems found.'
    : `FOUND ${plural(total, 'problem')}: ${counts.map(([count, noun, rest]) => `${plural(count, noun)}${rest === '' ? '' : ` ${rest}`}`).join(', ')}.`)
  return lines.join('\n')
}

async function main (): Promise<number> {
  let settings: Settings
  try {
    settings = readSettings(process.argv.slice(2), process.env)
  } catch (error) {
    if (!(error instanceof UsageError)) throw error
    if (error.message !== '') console.error(`check-integrity: ${error.message}\n`)
    console.error(USAGE)
    return 2
  }

  const client = new MongoClient(settings.uri, { serverSelectionTimeoutMS: 5000 })
  try {
    try {
      await client.connect()
      await client.db(settings.database).command({ ping: 1 })
    } catch (error) {
      console.error(`check-integrity: cannot connect to MONGODB_URI: ${error instanceof Error ? error.message : String(error)}`)
      return 2
    }
    const db = client.db(settings.database)
    const options = {
      usersCollection: settings.usersCollection,
      organizationsCollection: settings.organizationsCollection,
      phoneNumbersField: settings.phoneNumbersField,
      claimsCollection: settings.claimsCollection,
      inFlightGraceMs: settings.inFlightGraceMs
    }
    let report: IntegrityReport
    try {
      report = await checkIntegrity(db, {
        ...options,
        repair: settings.repair,
        ...(settings.repair ? { store: createPhoneNumberStore(db, options) } : {})
      })
    } catch (error) {
      console.error(`check-integrity: the check failed: ${error instanceof Error ? error.message : String(error)}`)
      return 2
    }
    console.log(settings.json ? JSON.stringify(report, null, 2) : humanReport(report))
    return report.ok ? 0 : 1
  } finally {
    await client.close()
  }
}

process.exitCode = await main()
